"""Raw clients of a live hub for the fault tests: an app and a browser speaking the contract, no relay.client.

Everything here reads PROTOCOL.md literally, so a test that passes with these peers proves the
contract, not our client's reading of it.
"""

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import websockets
from websockets.asyncio.client import ClientConnection

from tests.live import ROOT, Daphne, WebUser

T = TypeVar("T")
FINAL = frozenset({"succeeded", "failed", "timed_out", "cancelled"})
# Every connection the helpers open, so that a test's leftovers are closed before its database is
# emptied (a hub still serving them would otherwise log errors into the next test).
OPENED: list[ClientConnection] = []


async def connect(url: str, **options: Any) -> ClientConnection:
    ws = await websockets.connect(url, **options)
    OPENED.append(ws)
    return ws


async def close_all(grace: float = 0.5) -> None:
    """Close what the helpers opened, and give the hubs a moment to handle the disconnects."""
    leftovers = [ws for ws in OPENED if ws.close_code is None]
    OPENED.clear()
    for ws in leftovers:
        with contextlib.suppress(RuntimeError):  # opened in an earlier test, whose event loop is gone
            ws.transport.abort()
    await asyncio.sleep(grace)


async def until(predicate: Callable[[], Awaitable[T]], timeout: float, what: str, every: float = 0.1) -> T:
    """Await `predicate` until it returns something truthy; fail after `timeout` seconds."""
    end = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(every)


async def recv(ws: ClientConnection, kind: str | None = None, timeout: float = 10) -> dict[str, Any]:
    """The next JSON frame (of `kind`, skipping others)."""
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if kind is None or frame["type"] == kind:
            return frame


async def closed(ws: ClientConnection, timeout: float = 10) -> int | None:
    """Wait for the connection to end, skipping frames; the close code (1006: dropped without one)."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    except websockets.ConnectionClosed:
        pass
    return ws.close_code


async def register(hub: Daphne, space: str, token: str, **options: Any) -> tuple[ClientConnection, dict[str, Any]]:
    """Open /ws/apps/ and register; the hub's answer (registered, or the refusal)."""
    ws = await connect(f"{hub.ws}/ws/apps/", **options)
    await ws.send(json.dumps({"type": "register", "space": space, "token": token}))
    return ws, await recv(ws)


async def register_when_free(hub: Daphne, space: str, token: str, timeout: float = 30) -> ClientConnection:
    """What every app does after losing its connection: retry while the hub still holds the old lease."""
    end = time.monotonic() + timeout
    while True:
        ws, frame = await register(hub, space, token)
        if frame["type"] == "registered":
            return ws
        assert frame["code"] == "duplicate_connection", frame
        await ws.close()
        assert time.monotonic() < end, f"{space}: the old lease was still held after {timeout} s"
        await asyncio.sleep(0.5)


def answer_of(prompt: str) -> str:
    """What the test apps answer to a prompt: a result that names its request's input."""
    return f"answer to {prompt}"


async def answer(ws: ClientConnection, frame: dict[str, Any], words: int = 3, pause: float = 0.0) -> None:
    """Answer one request frame: a few partials, then the result."""
    text = answer_of(frame["inputs"].get("prompt", ""))
    for n in range(words):
        await ws.send(json.dumps({"type": "partial", "id": frame["id"], "text": text[n::words]}))
        if pause:
            await asyncio.sleep(pause)
    await ws.send(json.dumps({"type": "result", "id": frame["id"], "outputs": {"text": text}}))


async def serve(ws: ClientConnection, words: int = 3, pause: float = 0.0) -> None:
    """Answer every request that comes; return when the connection ends."""
    try:
        while True:
            await answer(ws, await recv(ws, "request", timeout=3600), words, pause)
    except websockets.ConnectionClosed:
        return


class Follower:
    """A browser on /ws/requests/<id>/: what it shows, rebuilt by the rules of docs/protocol.md."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []
        self.text = ""
        self.status = ""
        self.final: dict[str, Any] | None = None

    @classmethod
    async def open(cls, hub: Daphne, web: WebUser, request_id: str) -> "Follower":
        ws = await connect(f"{hub.ws}/ws/requests/{request_id}/", additional_headers=web.ws_headers())
        follower = cls(ws)
        state = await follower.next()
        assert state["type"] == "state", state
        return follower

    async def next(self, timeout: float = 15) -> dict[str, Any]:
        frame = await recv(self.ws, timeout=timeout)
        self.frames.append(frame)
        kind = frame["type"]
        if kind == "state":
            request = frame["request"]
            self.text, self.status = request["text"], request["status"]
            if request["status"] in FINAL:
                self.final = frame
        elif kind == "status":
            self.status = frame["status"]
            if frame["status"] == "running":
                self.text = ""  # a new attempt starts the text afresh
        elif kind == "partial":
            self.text += frame["text"]
        elif kind == "result":
            self.status, self.final = "succeeded", frame
            if "text" in frame["outputs"]:
                self.text = frame["outputs"]["text"]
        elif kind == "error":
            code = frame["error"]["code"]
            self.status = "failed" if code in ("app_error", "app_disconnected") else code
            self.final = frame
        return frame

    async def until_final(self, timeout: float = 30) -> dict[str, Any]:
        """Read until the final frame, then check the hub closes with 1000."""
        end = time.monotonic() + timeout
        while self.final is None:
            try:
                await self.next(max(0.1, end - time.monotonic()))
            except TimeoutError:
                raise AssertionError(f"no final frame within {timeout} s; got {self.frames}") from None
        assert await closed(self.ws) == 1000, "the hub closes the stream with 1000 after the final frame"
        return self.final

    async def close(self) -> None:
        await self.ws.close()


async def state(web: WebUser, request_id: str) -> dict[str, Any]:
    status, body = await asyncio.to_thread(web.request, "GET", f"/api/requests/{request_id}/")
    assert status == 200, body
    return body  # type: ignore[no-any-return]


async def wait_status(web: WebUser, request_id: str, statuses: set[str], timeout: float = 30) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        body = await state(web, request_id)
        return body if body["status"] in statuses else None

    return await until(reached, timeout, f"request {request_id} to reach {sorted(statuses)}", every=0.2)


async def wait_connected(hub: Daphne, slug: str, connected: bool = True, timeout: float = 20) -> None:
    """Until /api/spaces/<slug>/ says an app is (or is no longer) connected."""

    async def reached() -> bool:
        status, body = await asyncio.to_thread(WebUser(hub, None).request, "GET", f"/api/spaces/{slug}/")
        return status == 200 and body["connected"] is connected

    await until(reached, timeout, f"{slug} connected={connected}", every=0.2)


async def submit(web: WebUser, slug: str, prompt: str) -> str:
    status, body = await asyncio.to_thread(web.submit, slug, prompt)
    assert status == 201, body
    return str(body["id"])


class MockAppProcess:
    """The real mock app (`python -m relay.client`) in a subprocess, for kill -9 and SIGSTOP."""

    def __init__(self, log_dir: Path, hub: Daphne, pairs: list[tuple[str, str]], delay: str = "30") -> None:
        args = [sys.executable, "-m", "relay.client", "--hub", hub.http, "--delay", delay, "--verbose"]
        for space, token in pairs:
            args += ["--space", space, "--token", token]
        self.log_path = log_dir / f"mock-app-{time.monotonic_ns()}.log"
        with open(self.log_path, "ab") as out:
            env = {**os.environ, "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"}
            self.proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def send(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def kill(self) -> None:
        """kill -9 (also ends a stopped process)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
