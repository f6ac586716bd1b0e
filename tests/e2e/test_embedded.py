"""The embedded default end to end: one daphne on SQLite and the in-memory channel layer, as `make run` starts it.

The rest of the suite runs on PostgreSQL and Redis, but the relay's raw SQL (relay/sql.py) must hold on SQLite
too. Each test starts a fresh hub from the command line and drives it with raw clients only: aiohttp as the
browser (a real login form, CSRF, session cookie) and `websockets` as the remote app.
"""

import asyncio
import base64
import contextlib
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import websockets
from yarl import URL

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
DAPHNE = str(Path(sys.executable).parent / "daphne")
USERS = {"alice": "alice-password-1", "bob": "bob-password-1"}  # plain users: no staff bypass of ownership
OUT = b"\x00\x01 result bytes \xff"


@dataclass
class Hub:
    http: str
    ws: str
    token: str


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"manage.py {args[0]} failed:\n{done.stderr}"
    return done.stdout


def wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    end = time.monotonic() + 20
    while time.monotonic() < end:
        assert proc.poll() is None, f"daphne exited:\n{log.read_text()[-3000:]}"
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as resp:
                if resp.status == 200 and json.loads(resp.read())["status"] == "ok":
                    return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"daphne did not answer /healthz in 20 s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    """A fresh hub as a new user gets it: the test process's DATABASE_URL, REDIS_URL etc. do not leak in."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DEBUG": "1",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "MEDIA_ROOT": str(tmp_path / "media"),
        "PYTHONUNBUFFERED": "1",
    }
    manage(env, "migrate", "--noinput")
    create = "; ".join(f"User.objects.create_user({name!r}, password={pw!r})" for name, pw in USERS.items())
    manage(env, "shell", "-c", f"from django.contrib.auth.models import User; {create}")
    space = json.loads(manage(env, "setup_space", "Echo", "--features", "prompt,files", "--timeout", "2", "--json"))
    assert (space["slug"], space["timeout_seconds"]) == ("echo", 2)
    port = free_port()
    log_path = tmp_path / "daphne.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [DAPHNE, "-b", "127.0.0.1", "-p", str(port), "--websocket_timeout", "-1", "spacehub.asgi:application"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc, log_path)
        yield Hub(f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}", space["token"])
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    text = log_path.read_text(errors="replace")
    assert "Traceback" not in text, f"the hub logged an exception:\n{text[-4000:]}"
    with contextlib.closing(sqlite3.connect(tmp_path / "db.sqlite3")) as db:
        assert db.execute("SELECT COUNT(*) FROM relay_inferencerequest").fetchone()[0] > 0, "the queue is in this file"


class Browser:
    """A person in a browser: logs in through the form, then submits and follows with the session's cookies."""

    def __init__(self, hub: Hub, session: aiohttp.ClientSession) -> None:
        self.hub = hub
        self.session = session

    def cookies(self) -> dict[str, str]:
        jar = self.session.cookie_jar.filter_cookies(URL(self.hub.http))
        return {name: morsel.value for name, morsel in jar.items()}

    def headers(self) -> dict[str, str]:
        return {"Accept": "application/json", "X-CSRFToken": self.cookies()["csrftoken"]}

    async def login(self, username: str) -> None:
        async with self.session.get(f"{self.hub.http}/accounts/login/") as resp:
            assert resp.status == 200
            match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', await resp.text())
        assert match is not None and "csrftoken" in self.cookies()
        form = {"username": username, "password": USERS[username], "csrfmiddlewaretoken": match[1]}
        async with self.session.post(f"{self.hub.http}/accounts/login/", data=form, allow_redirects=False) as resp:
            assert (resp.status, resp.headers["Location"]) == (302, "/")
        assert "sessionid" in self.cookies()

    async def call(self, method: str, path: str, data: dict[str, str] | None = None) -> tuple[int, Any]:
        async with self.session.request(method, self.hub.http + path, data=data, headers=self.headers()) as resp:
            return resp.status, await resp.json()

    async def submit(self, prompt: str) -> dict[str, Any]:
        status, body = await self.call("POST", "/spaces/echo/requests/", {"prompt": prompt})
        assert status == 201, body
        assert body["status"] == "queued"
        assert (body["stream"], body["status_url"]) == (f"/ws/requests/{body['id']}/", f"/api/requests/{body['id']}/")
        return body

    async def state(self, request_id: str) -> dict[str, Any]:
        status, body = await self.call("GET", f"/api/requests/{request_id}/")
        assert status == 200, body
        return body

    async def final_state(self, request_id: str, timeout: float = 5) -> dict[str, Any]:
        """The state once the request ended (the app's last frame may still be on its way in)."""
        end = time.monotonic() + timeout
        body = await self.state(request_id)
        while body["status"] in ("queued", "running") and time.monotonic() < end:
            await asyncio.sleep(0.05)
            body = await self.state(request_id)
        return body

    def follow(self, request_id: str) -> Any:
        cookie = "; ".join(f"{name}={value}" for name, value in self.cookies().items())
        headers = {"Cookie": cookie, "Origin": self.hub.http}
        return websockets.connect(f"{self.hub.ws}/ws/requests/{request_id}/", additional_headers=headers)


@pytest.fixture
async def alice(hub: Hub) -> AsyncIterator[Browser]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        browser = Browser(hub, session)
        await browser.login("alice")
        yield browser


async def recv(ws: Any, timeout: float = 10) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), timeout))
    return frame


async def register(hub: Hub) -> Any:
    app = await websockets.connect(f"{hub.ws}/ws/apps/")
    await app.send(json.dumps({"type": "register", "space": "Echo", "token": hub.token, "client": {"name": "e2e"}}))
    registered = await recv(app)
    assert registered["type"] == "registered", registered
    assert registered["space"] == {
        "name": "Echo",
        "slug": "echo",
        "timeout_seconds": 2,
        "features": {"prompt": True, "audio": False, "video": False, "files": True},
    }
    return app


async def send(app: Any, kind: str, request_id: str, **fields: Any) -> None:
    await app.send(json.dumps({"type": kind, "id": request_id, **fields}))


async def take(app: Any, request_id: str, prompt: str, attempt: int = 1) -> None:
    """The app's next frame is this request."""
    frame = await recv(app)
    assert frame["type"] == "request", frame
    assert (frame["id"], frame["attempt"], frame["inputs"]) == (request_id, attempt, {"prompt": prompt})


async def closed_with(ws: Any, code: int) -> None:
    with pytest.raises(websockets.ConnectionClosed):
        await recv(ws)
    assert ws.close_code == code


async def test_it_streams_a_result_with_a_file_to_the_submitter(hub: Hub, alice: Browser) -> None:
    app = await register(hub)
    first = await alice.submit("first")
    await take(app, first["id"], "first")
    req = await alice.submit("poem")
    assert req["position"] == 1
    async with alice.follow(req["id"]) as browser:
        state = await recv(browser)
        assert state["type"] == "state"
        assert state["request"]["id"] == req["id"]
        assert (state["request"]["status"], state["request"]["position"]) == ("queued", 1)
        await send(app, "result", first["id"], outputs={"text": "done"})
        await take(app, req["id"], "poem")
        assert await recv(browser) == {"type": "status", "status": "running", "attempt": 1}
        # One frame at a time, each seen before the next is sent: the hub coalesces bursts of partials.
        await send(app, "progress", req["id"], progress=0.5, message="half way")
        assert await recv(browser) == {"type": "progress", "progress": 0.5, "message": "half way"}
        for chunk in ("Roses ", "are red"):
            await send(app, "partial", req["id"], text=chunk)
            assert await recv(browser) == {"type": "partial", "text": chunk}
        out = {"name": "poem.bin", "content_type": "application/octet-stream", "data": base64.b64encode(OUT).decode()}
        await send(app, "result", req["id"], outputs={"text": "Roses are red.", "files": [out]})
        result = await recv(browser)
        await closed_with(browser, 1000)
    assert result["type"] == "result"
    assert result["outputs"]["text"] == "Roses are red."
    [file] = result["outputs"]["files"]
    assert (file["name"], file["content_type"], file["size"]) == ("poem.bin", "application/octet-stream", len(OUT))
    async with alice.session.get(hub.http + file["url"]) as resp:
        assert (resp.status, await resp.read()) == (200, OUT)
    # Not logged in: sent to the login page (PROTOCOL.md section 2), no bytes.
    async with (
        aiohttp.ClientSession() as anonymous,
        anonymous.get(hub.http + file["url"], allow_redirects=False) as resp,
    ):
        assert resp.status == 302
        assert resp.headers["Location"].startswith("/accounts/login/")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        bob = Browser(hub, session)
        await bob.login("bob")
        async with session.get(hub.http + file["url"]) as resp:
            assert resp.status == 404, "another user's file"
        assert (await bob.call("GET", req["status_url"]))[0] == 404
    final = await alice.state(req["id"])
    assert (final["status"], final["attempt"], final["text"]) == ("succeeded", 1, "Roses are red.")
    assert final["error"] is None
    assert final["outputs"]["files"] == result["outputs"]["files"]
    assert (await alice.state(first["id"]))["status"] == "succeeded"
    await app.close()


async def test_it_skips_a_cancelled_request_in_the_queue(hub: Hub, alice: Browser) -> None:
    app = await register(hub)
    held = await alice.submit("held")
    await take(app, held["id"], "held")
    second, third = await alice.submit("second"), await alice.submit("third")
    assert (second["position"], third["position"]) == (1, 2)
    async with alice.follow(third["id"]) as browser:
        state = (await recv(browser))["request"]
        assert (state["status"], state["position"]) == ("queued", 2)
        status, cancelled = await alice.call("POST", f"/api/requests/{second['id']}/cancel/")
        assert status == 200, cancelled
        assert (cancelled["status"], cancelled["error"]["code"]) == ("cancelled", "cancelled")
        assert await recv(browser) == {"type": "status", "status": "queued", "position": 1}
    status, again = await alice.call("POST", f"/api/requests/{second['id']}/cancel/")
    assert (status, again["error"]["code"]) == (409, "not_cancellable"), again
    assert (await alice.state(second["id"]))["status"] == "cancelled"
    assert (await alice.state(third["id"]))["position"] == 1

    await send(app, "result", held["id"], outputs={"text": "held done"})
    await take(app, third["id"], "third")
    await send(app, "result", third["id"], outputs={"text": "third done"})
    assert (await alice.final_state(third["id"]))["status"] == "succeeded"
    assert (await alice.state(second["id"]))["started_at"] is None, "the cancelled request never ran"
    await app.close()


async def test_it_fails_on_an_app_error_and_times_out_a_silent_app(hub: Hub, alice: Browser) -> None:
    app = await register(hub)
    broken = await alice.submit("broken")
    await take(app, broken["id"], "broken")
    await send(app, "error", broken["id"], message="model failed: out of memory")
    submitted = time.monotonic()  # the dispatch, and so the 2 s, start after this
    silent = await alice.submit("silent")
    await take(app, silent["id"], "silent")
    failed = await alice.state(broken["id"])
    assert failed["status"] == "failed"
    assert failed["error"] == {"code": "app_error", "message": "model failed: out of memory"}

    async with alice.follow(silent["id"]) as browser:
        assert (await recv(browser))["request"]["status"] == "running"
        end = await recv(browser)
        assert end["type"] == "error" and end["error"]["code"] == "timed_out", end
        assert 2.0 <= time.monotonic() - submitted < 5, "the space's 2 s timeout"
        await closed_with(browser, 1000)
    assert await recv(app) == {"type": "cancel", "id": silent["id"], "reason": "timeout"}

    await send(app, "result", silent["id"], outputs={"text": "too late"})
    await app.send(json.dumps({"type": "ping"}))
    assert await recv(app) == {"type": "pong"}, "the late result is ignored without an error frame"
    late = await alice.state(silent["id"])
    assert (late["status"], late["error"]["code"]) == ("timed_out", "timed_out")
    assert (late["outputs"], late["text"]) == (None, "")
    await app.close()


async def test_it_requeues_a_request_when_the_app_disconnects(hub: Hub, alice: Browser) -> None:
    app = await register(hub)
    req = await alice.submit("again")
    await take(app, req["id"], "again")
    async with alice.follow(req["id"]) as browser:
        assert (await recv(browser))["request"]["status"] == "running"
        await send(app, "partial", req["id"], text="lost ")
        assert await recv(browser) == {"type": "partial", "text": "lost "}
        await app.close()
        # Published after the lease is released: the app can register again at once.
        assert await recv(browser) == {"type": "status", "status": "queued", "position": 1, "attempt": 1}
        status, space = await alice.call("GET", "/api/spaces/echo/")
        assert (status, space["connected"], space["queue_size"]) == (200, False, 1)

        app = await register(hub)
        await take(app, req["id"], "again", attempt=2)
        assert await recv(browser) == {"type": "status", "status": "running", "attempt": 2}
        await send(app, "result", req["id"], outputs={"text": "second time"})
        assert await recv(browser) == {"type": "result", "outputs": {"text": "second time", "files": []}}
        await closed_with(browser, 1000)
    final = await alice.state(req["id"])
    assert (final["status"], final["attempt"], final["text"]) == ("succeeded", 2, "second time")
    await app.close()
