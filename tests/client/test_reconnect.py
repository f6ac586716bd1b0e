"""The hub goes away under a running app: the app reconnects by itself and serves on."""

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from relay.models import AppLease
from tests.client.conftest import MockApp, submit, wait_connected, wait_for, wait_status
from tests.live import Daphne, WebUser

pytestmark = [pytest.mark.e2e, pytest.mark.hubs(1)]


def test_it_reconnects_when_the_hub_comes_back(
    hub: Daphne, web: WebUser, make_space: Any, mock_app: Callable[..., MockApp]
) -> None:
    space, token = make_space("Echo")
    app = mock_app(hub, [("Echo", token)], "--delay", "0")
    wait_connected(hub, space.slug)
    assert wait_status(web, submit(web, space.slug, "before"))["status"] == "succeeded"

    hub.stop()
    app.wait_output("cannot reach the hub")
    # A hub down for minutes: by the time it is back, the lease of the app's old connection has
    # lapsed (daphne's SIGTERM does not run the consumer's disconnect, so the lease is not released).
    AppLease.objects.update(expires_at=timezone.now())
    time.sleep(1)
    hub.start()

    wait_connected(hub, space.slug)
    body = wait_status(web, submit(web, space.slug, "after"))
    assert body["status"] == "succeeded"
    assert body["outputs"]["text"] == 'You said: "after".'
    assert app.proc.poll() is None
    assert app.output().count("connected: connection") == 2, app.output()


def test_it_waits_out_its_own_stale_connection_after_a_quick_restart(
    hub: Daphne, web: WebUser, make_space: Any, mock_app: Callable[..., MockApp]
) -> None:
    space, token = make_space("Echo")
    app = mock_app(hub, [("Echo", token)], "--delay", "0")
    wait_connected(hub, space.slug)

    hub.kill()  # kill -9: no goodbye, so the old connection's lease is left behind
    # Keep it alive for the test whatever the machine's speed (its own TTL is 20 s from the last renewal).
    AppLease.objects.update(expires_at=timezone.now() + timedelta(seconds=60))
    hub.start()
    # The restarted hub still counts the old connection until its lease lapses (PROTOCOL: within
    # 30 s) and refuses the app meanwhile; the app keeps retrying every few seconds, not every 12.
    app.wait_output("the hub still counts this app's previous connection", timeout=40)
    request_id = submit(web, space.slug, "after a restart")
    AppLease.objects.update(expires_at=timezone.now())  # the lapse, without waiting the hub's 20 s

    body = wait_status(web, request_id, timeout=15)
    assert body["status"] == "succeeded"
    assert "another app holds this space" not in app.output()
    wait_for(lambda: app.output().count("connected: connection") == 2, 5, "the second registration in the log")
