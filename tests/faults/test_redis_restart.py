"""Redis (the channel layer and the rate-limit cache) dies and comes back during traffic.

The hub runs on a Redis of its own (never the machine's 6379); this test process's channel layer is
the machine's Redis, so the test drives the daphne processes over HTTP and WebSocket only. The real
mock app serves the space and reconnects by itself, as every app does.
"""

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from asgiref.sync import sync_to_async

from bench.soak import expected_answer, nothing_lost, phantoms
from tests import settings as test_settings
from tests.faults.peers import FINAL, Follower, MockAppProcess, until, wait_connected
from tests.live import Daphne, WebUser, free_port, running_hubs

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]

OUTAGE_SECONDS = 3.0


class Redis:
    """A throwaway redis-server on a free port."""

    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        end = time.monotonic() + 10
        while subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True).stdout != b"PONG\n":
            assert time.monotonic() < end, "redis-server did not start"
            time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[Redis]:
    if not test_settings.HAVE_POSTGRES:
        pytest.skip("needs PostgreSQL (see README)")
    server = Redis(tmp_path / "redis.log")
    server.start()
    yield server
    server.kill()


@pytest.fixture
def own_hubs(redis: Redis, tmp_path: Path, transactional_db: Any) -> Iterator[list[Daphne]]:
    with running_hubs(tmp_path, 2, REDIS_URL=redis.url) as hubs:
        yield hubs


async def healthy(hub: Daphne) -> bool:
    status, body = await asyncio.to_thread(WebUser(hub, None).request, "GET", "/healthz")
    return status == 200 and body["channel_layer"] == "ok"


async def follow_to_the_end(hub: Daphne, web: WebUser, request_id: str, seen: dict[str, str], timeout: float) -> None:
    """A browser on the space page: it follows the request and reconnects (as space.js does) until the end."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            follower = await Follower.open(hub, web, request_id)
            while follower.final is None:
                await follower.next(timeout=max(0.1, end - time.monotonic()))
            seen[request_id] = follower.status
            return
        except (OSError, TimeoutError, websockets.WebSocketException, AssertionError):
            await asyncio.sleep(0.5)
    seen[request_id] = "(no final frame)"


async def test_the_hub_recovers_from_a_redis_restart_and_loses_nothing(
    redis: Redis, own_hubs: list[Daphne], make_space: Any, django_user_model: Any, tmp_path: Path
) -> None:
    a, b = own_hubs
    pids = [hub.proc.pid for hub in own_hubs if hub.proc]
    _, token = await sync_to_async(make_space)("Echo")
    users = [await sync_to_async(django_user_model.objects.create_user)(f"user{n}") for n in range(4)]
    webs = [await sync_to_async(WebUser)(b, user) for user in users]
    app = MockAppProcess(tmp_path, a, [("Echo", token)], delay="0.5")
    accepted: dict[str, str] = {}
    owners: dict[str, WebUser] = {}
    refused: list[int] = []
    seen: dict[str, str] = {}
    followers: list[asyncio.Task[None]] = []

    async def traffic(seconds: float) -> None:
        end = time.monotonic() + seconds
        n = 0
        while time.monotonic() < end:
            web, prompt = webs[n % len(webs)], f"during traffic {n}"
            n += 1
            try:
                status, body = await asyncio.to_thread(web.submit, "echo", prompt)
            except OSError:
                status, body = 0, None
            if status == 201:
                accepted[body["id"]], owners[body["id"]] = prompt, web
                followers.append(asyncio.create_task(follow_to_the_end(b, web, body["id"], seen, 90)))
            else:
                refused.append(status)
            await asyncio.sleep(0.4)

    try:
        await wait_connected(b, "echo")
        load = asyncio.create_task(traffic(2 + OUTAGE_SECONDS + 2))
        await asyncio.sleep(2)
        redis.kill()
        down = time.monotonic()
        await asyncio.sleep(OUTAGE_SECONDS)
        redis.start()
        back = time.monotonic()
        await load
        for hub in own_hubs:
            await until(lambda hub=hub: healthy(hub), 15, f"{hub.name} healthy again")
        healthy_after = time.monotonic() - back

        # The app is served again within the contract's 30 s for a dead connection (plus its retry), and
        # live updates resume: a new request streams its partials, not only a snapshot.
        status, body = await asyncio.to_thread(webs[0].submit, "echo", "after the restart")
        assert status == 201, body
        accepted[body["id"]], owners[body["id"]] = "after the restart", webs[0]
        live = await Follower.open(b, webs[0], body["id"])
        await live.until_final(timeout=max(5.0, down + 30 + 8 - time.monotonic()))
        served_after = time.monotonic() - back
        kinds = [f["type"] for f in live.frames]
        assert "partial" in kinds and kinds[-1] == "result", kinds

        await asyncio.wait_for(asyncio.gather(*followers), 100)
        states = {}
        for request_id, web in owners.items():
            status, state = await asyncio.to_thread(web.request, "GET", f"/api/requests/{request_id}/")
            assert status == 200, state
            states[request_id] = state["status"]
        print(
            f"redis down {OUTAGE_SECONDS:.0f} s: healthz ok {healthy_after:.1f} s after it came back, a new request "
            f"done {served_after:.1f} s after; {len(accepted)} accepted, refused {sorted(set(refused))}, "
            f"final {sorted(set(states.values()))}"
        )
        assert set(states.values()) <= FINAL, states
        assert seen == {k: states[k] for k in seen}, "each browser caught up with what the database holds"
        expected = {k: expected_answer(v) for k, v in accepted.items()}
        assert await sync_to_async(nothing_lost)(expected) == []
        assert await sync_to_async(phantoms)([u.pk for u in users], expected) == [], "a refusal queued nothing"
        assert [hub.proc.pid for hub in own_hubs if hub.proc and hub.proc.poll() is None] == pids, "no restart"
    finally:
        app.kill()
        for task in followers:
            task.cancel()
