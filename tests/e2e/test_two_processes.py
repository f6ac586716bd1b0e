"""Two live daphne processes sharing PostgreSQL and Redis: the app on one, the browser on the other.

Raw `websockets` clients only, so these tests check the contract and not our client's reading of it.
"""

import asyncio
import json
import time
from typing import Any

import pytest
import websockets

from tests.live import Daphne, WebUser

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


async def register(hub: Daphne, space: str, token: str) -> tuple[Any, dict[str, Any]]:
    ws = await websockets.connect(f"{hub.ws}/ws/apps/")
    await ws.send(json.dumps({"type": "register", "space": space, "token": token}))
    return ws, json.loads(await asyncio.wait_for(ws.recv(), 10))


async def recv(ws: Any, kind: str | None = None, timeout: float = 10) -> dict[str, Any]:
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if kind is None or frame["type"] == kind:
            return frame


@pytest.fixture
def echo(make_space: Any) -> tuple[Any, str]:
    return make_space("Echo")


@pytest.fixture
def web(hubs: list[Daphne], alice: Any) -> WebUser:
    return WebUser(hubs[1], alice)


async def test_it_relays_across_processes(hubs: list[Daphne], echo: Any, web: WebUser) -> None:
    a, b = hubs
    _, token = echo
    app, registered = await register(a, "Echo", token)
    assert registered["type"] == "registered"

    dup, refusal = await register(b, "Echo", token)
    assert refusal["code"] == "duplicate_connection"
    with pytest.raises(websockets.ConnectionClosed):
        await asyncio.wait_for(dup.recv(), 10)
    assert dup.close_code == 4409

    status, body = await asyncio.to_thread(web.submit, "echo", "across")
    assert status == 201, body
    async with websockets.connect(f"{b.ws}{body['stream']}", additional_headers=web.ws_headers()) as browser:
        state = await recv(browser, "state")
        assert state["request"]["id"] == body["id"]
        request = await recv(app, "request")
        assert (request["id"], request["inputs"]) == (body["id"], {"prompt": "across"})
        for word in ("one ", "two ", "three"):
            await app.send(json.dumps({"type": "partial", "id": request["id"], "text": word}))
        await app.send(json.dumps({"type": "result", "id": request["id"], "outputs": {"text": "one two three"}}))
        text = state["request"]["text"]
        while True:
            frame = await recv(browser)
            if frame["type"] == "partial":
                text += frame["text"]
            if frame["type"] == "result":
                break
        assert text == "one two three"
        assert frame["outputs"]["text"] == "one two three"
        with pytest.raises(websockets.ConnectionClosedOK):
            await asyncio.wait_for(browser.recv(), 10)
        assert browser.close_code == 1000
    status, final = await asyncio.to_thread(web.request, "GET", body["status_url"])
    assert (status, final["status"]) == (200, "succeeded")
    await app.close()


async def test_the_app_survives_a_kill_9_of_its_hub_process(hubs: list[Daphne], echo: Any, web: WebUser) -> None:
    a, b = hubs
    _, token = echo
    app, _ = await register(a, "Echo", token)
    status, body = await asyncio.to_thread(web.submit, "echo", "survive")
    assert status == 201
    async with websockets.connect(f"{b.ws}{body['stream']}", additional_headers=web.ws_headers()) as browser:
        await recv(browser, "state")
        first = await recv(app, "request")
        assert first["attempt"] == 1
        await app.send(json.dumps({"type": "partial", "id": first["id"], "text": "lost words "}))
        await recv(browser, "partial")

        a.kill()
        killed_at = time.monotonic()
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(app.recv(), 10)

        while True:  # what any app does: retry until the dead connection's lease lapses
            app, frame = await register(b, "Echo", token)
            if frame["type"] == "registered":
                break
            assert frame["code"] == "duplicate_connection"
            assert time.monotonic() - killed_at < 30, "the dead lease must lapse within 30 s"
            await app.close()
            await asyncio.sleep(1)
        took = time.monotonic() - killed_at
        assert took < 30

        again = await recv(app, "request", timeout=15)
        assert (again["id"], again["attempt"]) == (first["id"], 2)
        await app.send(json.dumps({"type": "result", "id": again["id"], "outputs": {"text": "second time"}}))
        seen = []
        while True:
            frame = await recv(browser, timeout=15)
            seen.append(frame["type"])
            if frame["type"] in ("result", "error"):
                break
        assert frame == {"type": "result", "outputs": {"text": "second time", "files": []}}
        assert "status" in seen, "the browser heard of the requeue and the second start"
    status, final = await asyncio.to_thread(web.request, "GET", body["status_url"])
    assert (final["status"], final["attempt"], final["text"]) == ("succeeded", 2, "second time")
    await app.close()


async def test_the_space_status_is_live_on_every_process(hubs: list[Daphne], echo: Any, web: WebUser) -> None:
    a, b = hubs
    _, token = echo
    async with websockets.connect(f"{b.ws}/ws/spaces/echo/", additional_headers={"Origin": b.http}) as watcher:
        assert json.loads(await watcher.recv()) == {"type": "space", "connected": False, "queue_size": 0}
        app, _ = await register(a, "Echo", token)
        assert json.loads(await asyncio.wait_for(watcher.recv(), 10)) == {
            "type": "space",
            "connected": True,
            "queue_size": 0,
        }
        await app.close()
        frame = json.loads(await asyncio.wait_for(watcher.recv(), 10))
        assert frame == {"type": "space", "connected": False, "queue_size": 0}


async def test_a_foreign_origin_is_refused_by_live_daphne(hubs: list[Daphne], echo: Any, web: WebUser) -> None:
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(f"{hubs[0].ws}/ws/spaces/echo/", additional_headers={"Origin": "https://evil.example"})
    assert refused.value.response.status_code == 403
