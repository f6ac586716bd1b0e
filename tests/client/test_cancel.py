"""The hub gives a request up (cancel, timeout): the handler is stopped and nothing more is sent for it."""

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from relay.client import App, Request, RequestCancelled, SyncRequest
from tests.client.conftest import state, submit, until, wait_status
from tests.live import Daphne, WebUser

pytestmark = [pytest.mark.e2e, pytest.mark.hubs(1)]

Serving = Callable[[App], Awaitable[App]]


@pytest.fixture
def quick(make_space: Any) -> tuple[Any, str]:
    return make_space("Quick", timeout_seconds=1)


async def cancel(web: WebUser, request_id: str) -> None:
    status, body = await asyncio.to_thread(web.request, "POST", f"/api/requests/{request_id}/cancel/")
    assert status == 200, body


async def wait_running(web: WebUser, request_id: str) -> None:
    await asyncio.to_thread(wait_status, web, request_id, {"running"})


async def test_it_cancels_an_async_handler_and_serves_the_next_request(
    hub: Daphne, web: WebUser, echo: tuple[Any, str], serving: Serving, caplog: pytest.LogCaptureFixture
) -> None:
    space, token = echo
    stopped = asyncio.Event()

    async def handle(request: Request) -> str:
        if request.prompt == "forever":
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                stopped.set()
                raise
        return f"done: {request.prompt}"

    await serving(App(hub.http, "Echo", token, handle))
    first = await asyncio.to_thread(submit, web, space.slug, "forever")
    await wait_running(web, first)
    await cancel(web, first)

    await asyncio.wait_for(stopped.wait(), 5)
    body = await asyncio.to_thread(wait_status, web, await asyncio.to_thread(submit, web, space.slug, "next"))
    assert body["outputs"]["text"] == "done: next"
    assert (await asyncio.to_thread(state, web, first))["status"] == "cancelled"
    assert f"request {first} cancelled in" in caplog.text
    assert "unknown_request" not in caplog.text  # no frame was sent about the cancelled request


async def test_it_lets_a_plain_def_handler_notice_the_cancel_and_ignores_its_result(
    hub: Daphne, web: WebUser, echo: tuple[Any, str], serving: Serving, caplog: pytest.LogCaptureFixture
) -> None:
    space, token = echo
    noticed = threading.Event()

    def handle(request: SyncRequest) -> str:
        if request.prompt != "forever":
            return "quick"
        try:
            for _ in range(200):
                request.partial(".")  # raises RequestCancelled once the hub gave the request up
                time.sleep(0.05)
        except RequestCancelled:
            noticed.set()
        return "too late"  # ignored: never sent

    await serving(App(hub.http, "Echo", token, handle))
    first = await asyncio.to_thread(submit, web, space.slug, "forever")
    await wait_running(web, first)
    await cancel(web, first)

    assert await asyncio.to_thread(noticed.wait, 5)
    body = await asyncio.to_thread(wait_status, web, await asyncio.to_thread(submit, web, space.slug, "next"))
    assert body["outputs"]["text"] == "quick"
    assert (await asyncio.to_thread(state, web, first))["status"] == "cancelled"
    await asyncio.sleep(0.3)
    assert "unknown_request" not in caplog.text


async def test_it_gives_up_a_request_that_timed_out(
    hub: Daphne, web: WebUser, quick: tuple[Any, str], serving: Serving, caplog: pytest.LogCaptureFixture
) -> None:
    space, token = quick
    seen: list[str] = []

    async def handle(request: Request) -> str:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            seen.append(request.cancel_reason or "")
            raise
        return "never"

    await serving(App(hub.http, "Quick", token, handle))
    request_id = await asyncio.to_thread(submit, web, space.slug, "slow")
    body = await asyncio.to_thread(wait_status, web, request_id)

    assert body["status"] == "timed_out"
    await until(lambda: seen, 5, "the handler to be cancelled")
    assert seen == ["timeout"]
    assert f"request {request_id} timed out in" in caplog.text
