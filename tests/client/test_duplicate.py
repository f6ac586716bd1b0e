"""A second app for a space that already has one: it waits, retrying slowly, and takes over later."""

import asyncio
import signal
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from relay.client import App, Request
from tests.client.conftest import MockApp, submit, until, wait_connected, wait_status
from tests.live import Daphne, WebUser

pytestmark = [pytest.mark.e2e, pytest.mark.hubs(1)]


async def test_it_retries_and_takes_over_when_the_first_app_exits(
    hub: Daphne,
    web: WebUser,
    echo: tuple[Any, str],
    mock_app: Callable[..., MockApp],
    serving: Callable[[App], Awaitable[App]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    space, token = echo
    first = mock_app(hub, [("Echo", token)], "--delay", "0")
    await asyncio.to_thread(wait_connected, hub, space.slug)

    async def second_answer(request: Request) -> str:
        return f"second: {request.prompt}"

    second = App(hub.http, "Echo", token, second_answer, duplicate_retry=0.5)
    task = asyncio.create_task(second.serve())
    await until(lambda: caplog.text.count("another app holds this space") >= 2, 10, "two refused registrations")
    body = await asyncio.to_thread(wait_status, web, await asyncio.to_thread(submit, web, space.slug, "one"))
    assert body["outputs"]["text"] == 'You said: "one".'  # still the first app's

    first.signal(signal.SIGTERM)
    assert await asyncio.to_thread(first.wait) == 0
    await until(lambda: second.connection_id is not None, 10, "the second app to register")
    body = await asyncio.to_thread(wait_status, web, await asyncio.to_thread(submit, web, space.slug, "two"))
    assert body["outputs"]["text"] == "second: two"

    second.stop()
    await asyncio.wait_for(task, 10)
