"""Client test helpers: the mock app as a subprocess, and waiting on a live hub's JSON API."""

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from relay.client import App
from tests.live import ROOT, Daphne, WebUser

T = TypeVar("T")
FINAL = {"succeeded", "failed", "timed_out", "cancelled"}


def wait_for(predicate: Callable[[], T], timeout: float = 15.0, what: str = "a condition") -> T:
    """Poll `predicate` until it returns something truthy; fail the test after `timeout` seconds."""
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def space_status(hub: Daphne, slug: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{hub.http}/api/spaces/{slug}/", timeout=5) as resp:
        return json.loads(resp.read())


def wait_connected(hub: Daphne, slug: str, connected: bool = True, timeout: float = 15.0) -> None:
    wait_for(lambda: space_status(hub, slug)["connected"] is connected, timeout, f"{slug} connected={connected}")


def state(web: WebUser, request_id: str) -> dict[str, Any]:
    status, body = web.request("GET", f"/api/requests/{request_id}/")
    assert status == 200, body
    return body


def wait_status(web: WebUser, request_id: str, statuses: set[str] = FINAL, timeout: float = 20.0) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        body = state(web, request_id)
        return body if body["status"] in statuses else None

    return wait_for(reached, timeout, f"request {request_id} to reach {sorted(statuses)}")


def submit(web: WebUser, slug: str, prompt: str = "hello") -> str:
    status, body = web.submit(slug, prompt)
    assert status == 201, body
    return str(body["id"])


def submit_files(web: WebUser, slug: str, prompt: str, files: list[tuple[str, str, str, bytes]]) -> str:
    """A multipart submission: `files` holds (field, filename, content_type, data)."""
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="prompt"\r\n\r\n{prompt}\r\n'.encode()]
    for field, name, content_type, data in files:
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        )
        parts.append(head.encode() + data + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    status, answer = web.request(
        "POST", f"/spaces/{slug}/requests/", body, **{"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    assert status == 201, answer
    return str(answer["id"])


class MockApp:
    """`python -m relay.client` in a subprocess, its output in a file."""

    def __init__(
        self,
        log_path: Path,
        args: list[str],
        env: dict[str, str] | None = None,
        *,
        python: str | Path = sys.executable,
        cwd: Path = ROOT,
        base_env: dict[str, str] | None = None,
    ) -> None:
        self.log_path = log_path
        self.args = [str(python), "-m", "relay.client", *args]
        base = dict(os.environ) if base_env is None else base_env
        out = open(log_path, "ab")  # noqa: SIM115 - handed to the child process
        self.proc = subprocess.Popen(
            self.args,
            cwd=cwd,
            env={**base, "NO_COLOR": "1", "PYTHONUNBUFFERED": "1", **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        out.close()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 15.0) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the mock app did not exit in {timeout} s:\n{self.output()}") from None

    def wait_output(self, text: str, timeout: float = 15.0) -> str:
        return wait_for(lambda: text in self.output() and self.output(), timeout, f"{text!r} in the app's log")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def mock_app(tmp_path: Path) -> Iterator[Callable[..., MockApp]]:
    """mock_app(hub, [(space, token), ...], *extra_args, env=None) starts the mock app; killed at the end."""
    started: list[MockApp] = []

    def start(hub: Daphne, pairs: list[tuple[str, str]], *extra: str, env: dict[str, str] | None = None) -> MockApp:
        args = ["--hub", hub.http]
        for space, token in pairs:
            args += ["--space", space] + (["--token", token] if token else [])
        app = MockApp(tmp_path / f"mock-app-{len(started)}.log", [*args, *extra], env)
        started.append(app)
        return app

    yield start
    for app in started:
        app.kill()


@pytest.fixture
def web(hub: Daphne, alice: Any) -> WebUser:
    """Alice, logged in, talking HTTP to the live hub."""
    return WebUser(hub, alice)


async def until(predicate: Callable[[], Any], timeout: float = 15.0, what: str = "a condition") -> Any:
    """`wait_for` for async tests: the event loop (and an in-process App) keeps running meanwhile."""
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.fixture
async def serving() -> AsyncIterator[Callable[[App], Awaitable[App]]]:
    """serving(app) runs an App in the test's event loop until it registers; stopped at the end."""
    running: list[tuple[App, asyncio.Task[None]]] = []

    async def start(app: App) -> App:
        task = asyncio.create_task(app.serve())
        running.append((app, task))
        await until(lambda: app.connection_id is not None or task.done(), what=f"{app} to register")
        if task.done():
            task.result()
        return app

    yield start
    for app, _task in running:
        app.stop(now=True)
    for _app, task in running:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)


@pytest.fixture
def echo(make_space: Any) -> tuple[Any, str]:
    """The space "Echo" (prompt only) and its app token, made before an async test's loop runs."""
    return make_space("Echo")
