"""The client against a scripted WebSocket server: refusals, retries, stopping. No hub needed."""

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from relay.client import App, CredentialsRefused, Request
from tests.client.conftest import until
from tests.live import free_port

Script = Callable[[ServerConnection], Awaitable[None]]


@pytest.fixture
async def server() -> AsyncIterator[Callable[[Script], Awaitable[str]]]:
    """server(script) serves `script` for each connection and returns the hub URL to give an App."""
    servers: list[Any] = []

    async def start(script: Script) -> str:
        port = free_port()
        servers.append(await serve(script, "127.0.0.1", port))
        return f"http://127.0.0.1:{port}"

    yield start
    for srv in servers:
        srv.close()
        await srv.wait_closed()


async def registered(ws: ServerConnection, seen: list[dict[str, Any]] | None = None) -> None:
    frame = json.loads(await ws.recv())
    if seen is not None:
        seen.append(frame)
    await ws.send(json.dumps({"type": "registered", "connection_id": "c1", "space": {"features": {"prompt": True}}}))


async def answer(request: Request) -> str:
    return f"echo {request.prompt}"


async def test_it_registers_with_its_space_token_and_client_name(server: Any) -> None:
    seen: list[dict[str, Any]] = []

    async def script(ws: ServerConnection) -> None:
        await registered(ws, seen)
        await ws.wait_closed()

    app = App(await server(script), "Echo", "sh_token", answer)
    task = asyncio.create_task(app.serve())
    await until(lambda: app.connection_id == "c1", 5)
    app.stop()
    await asyncio.wait_for(task, 5)

    assert seen == [
        {
            "type": "register",
            "space": "Echo",
            "token": "sh_token",
            "client": {"name": "spacehub-client", "version": "1.0.0"},
        }
    ]
    assert app.features == {"prompt": True}


async def test_invalid_credentials_stop_the_app(server: Any) -> None:
    async def script(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.send(json.dumps({"type": "error", "code": "invalid_credentials", "message": "Wrong token."}))
        await ws.close(4401)

    app = App(await server(script), "Echo", "bad", answer)

    with pytest.raises(CredentialsRefused, match=re.escape('refused space "Echo": Wrong token. Check')):
        await asyncio.wait_for(app.serve(), 5)


async def test_a_duplicate_is_retried_until_the_space_is_free(server: Any, caplog: pytest.LogCaptureFixture) -> None:
    attempts = 0

    async def script(ws: ServerConnection) -> None:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            await ws.recv()
            await ws.send(json.dumps({"type": "error", "code": "duplicate_connection", "message": "Taken."}))
            await ws.close(4409)
            return
        await registered(ws)
        await ws.wait_closed()

    app = App(await server(script), "Echo", "t", answer, duplicate_retry=0.2)
    task = asyncio.create_task(app.serve())
    await until(lambda: app.connection_id is not None, 5)
    app.stop()
    await asyncio.wait_for(task, 5)

    assert attempts == 3
    assert caplog.text.count("another app holds this space (Taken.); retrying in") == 2


async def test_it_stops_at_once_while_the_hub_is_unreachable() -> None:
    app = App(f"http://127.0.0.1:{free_port()}", "Echo", "t", answer)
    task = asyncio.create_task(app.serve())
    await asyncio.sleep(0.3)

    began = time.monotonic()
    app.stop()
    await asyncio.wait_for(task, 5)

    assert time.monotonic() - began < 1


async def test_it_stops_at_once_while_waiting_for_the_registration(server: Any) -> None:
    async def script(ws: ServerConnection) -> None:
        await ws.wait_closed()  # never answers the register frame

    app = App(await server(script), "Echo", "t", answer)
    task = asyncio.create_task(app.serve())
    await asyncio.sleep(0.3)

    began = time.monotonic()
    app.stop()
    await asyncio.wait_for(task, 5)

    assert time.monotonic() - began < 1


async def test_stopping_finishes_the_request_then_closes_with_1000(server: Any) -> None:
    got: dict[str, Any] = {}

    async def script(ws: ServerConnection) -> None:
        await registered(ws)
        await ws.send(json.dumps({"type": "request", "id": "r1", "attempt": 1, "inputs": {"prompt": "hi"}}))
        got["stopping"] = json.loads(await ws.recv())
        got["result"] = json.loads(await ws.recv())
        await ws.send(json.dumps({"type": "request", "id": "r2", "attempt": 1, "inputs": {"prompt": "late"}}))
        await ws.wait_closed()
        got["close"] = ws.close_code

    async def slow(request: Request) -> str:
        await asyncio.sleep(0.5)
        return f"done {request.prompt}"

    app = App(await server(script), "Echo", "t", slow, grace=5)
    task = asyncio.create_task(app.serve())
    await until(lambda: app._job is not None, 5)
    app.stop()
    await asyncio.wait_for(task, 5)

    assert got["stopping"] == {"type": "stopping"}, "first the hub hears: nothing new, please"
    assert got["result"] == {"type": "result", "id": "r1", "outputs": {"text": "done hi"}}
    assert got["close"] == 1000


async def test_a_cancel_ends_the_handler_and_no_frame_follows(server: Any) -> None:
    frames: list[dict[str, Any]] = []
    cancelled = asyncio.Event()

    async def script(ws: ServerConnection) -> None:
        await registered(ws)
        await ws.send(json.dumps({"type": "request", "id": "r1", "attempt": 1, "inputs": {"prompt": "hi"}}))
        frames.append(json.loads(await ws.recv()))  # the first progress
        await ws.send(json.dumps({"type": "cancel", "id": "r1", "reason": "cancelled"}))
        async for raw in ws:
            frames.append(json.loads(raw))

    async def handler(request: Request) -> str:
        await request.progress(0.1)
        try:
            await asyncio.sleep(10)
        finally:
            cancelled.set()
        return "never"

    app = App(await server(script), "Echo", "t", handler)
    task = asyncio.create_task(app.serve())
    await asyncio.wait_for(cancelled.wait(), 5)
    await asyncio.sleep(0.2)
    app.stop()
    await asyncio.wait_for(task, 5)

    assert [f["type"] for f in frames] == ["progress", "stopping"], "nothing about r1 after its cancel"
