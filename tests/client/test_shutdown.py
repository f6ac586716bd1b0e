"""SIGINT/SIGTERM: stop taking requests, let the one in flight finish (or give it up after the grace), exit 0."""

import signal
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.client.conftest import MockApp, space_status, submit, wait_connected, wait_status
from tests.live import Daphne, WebUser

pytestmark = [pytest.mark.e2e, pytest.mark.hubs(1)]


def test_it_exits_0_at_once_when_idle(hub: Daphne, make_space: Any, mock_app: Callable[..., MockApp]) -> None:
    space, token = make_space("Echo")
    app = mock_app(hub, [("Echo", token)], "--delay", "0")
    wait_connected(hub, space.slug)

    began = time.monotonic()
    app.signal(signal.SIGINT)

    assert app.wait(5) == 0
    assert time.monotonic() - began < 3
    assert space_status(hub, space.slug)["connected"] is False  # closed with 1000: the lease is released
    assert "Traceback" not in app.output()


def test_it_finishes_the_request_in_flight_on_sigterm(
    hub: Daphne, web: WebUser, make_space: Any, mock_app: Callable[..., MockApp]
) -> None:
    space, token = make_space("Echo")
    app = mock_app(hub, [("Echo", token)], "--delay", "1.5")
    wait_connected(hub, space.slug)
    first = submit(web, space.slug, "finish me")
    second = submit(web, space.slug, "leave me queued")
    wait_status(web, first, {"running"})

    app.signal(signal.SIGTERM)

    assert app.wait(10) == 0
    assert wait_status(web, first)["status"] == "succeeded"
    # The hub may have handed over the next request just before the close: it is back in the queue.
    assert wait_status(web, second, {"queued"})["status"] == "queued"
    out = app.output()
    assert f"stopping: letting request {first} finish" in out
    assert f"request {first} succeeded" in out
    assert "[Echo] stopped" in out


def test_it_gives_the_request_back_after_the_grace_period(
    hub: Daphne, web: WebUser, make_space: Any, mock_app: Callable[..., MockApp]
) -> None:
    space, token = make_space("Echo")
    app = mock_app(hub, [("Echo", token)], "--delay", "20", "--grace", "0.5", "--verbose")
    wait_connected(hub, space.slug)
    request_id = submit(web, space.slug, "too slow")
    wait_status(web, request_id, {"running"})
    app.wait_output(request_id)  # the app has the request (the hub marks it running before sending it)

    began = time.monotonic()
    app.signal(signal.SIGTERM)

    assert app.wait(10) == 0
    assert time.monotonic() - began < 4
    assert wait_status(web, request_id, {"queued"})["status"] == "queued"  # requeued, not lost
    assert "abandoned (app stopping; the hub requeues it)" in app.output()

    # The next app to come gets it again, as attempt 2.
    again = mock_app(hub, [("Echo", token)], "--delay", "0")
    body = wait_status(web, request_id)
    assert body["status"] == "succeeded"
    assert body["outputs"]["text"] == 'You said: "too slow".'
    again.wait_output(f"request {request_id} succeeded")
    assert "(attempt 2)" in again.output()


def test_a_second_signal_stops_at_once(
    hub: Daphne, web: WebUser, make_space: Any, mock_app: Callable[..., MockApp]
) -> None:
    space, token = make_space("Echo")
    app = mock_app(hub, [("Echo", token)], "--delay", "20")
    wait_connected(hub, space.slug)
    request_id = submit(web, space.slug, "too slow")
    wait_status(web, request_id, {"running"})

    app.signal(signal.SIGINT)
    app.wait_output("stopping: letting request")
    app.signal(signal.SIGINT)

    assert app.wait(5) == 0
    assert wait_status(web, request_id, {"queued"})["status"] == "queued"
