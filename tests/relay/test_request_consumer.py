"""`/ws/requests/<id>/`: the snapshot, then every change in order; 4403 for anyone else."""

import uuid
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore

from relay import queue
from relay.consumers import browser as browser_consumers
from relay.events import publish
from relay.models import InferenceRequest, Status, request_group, space_group
from tests.relay.conftest import ORIGIN, Peer, follow, members, register, session_headers

pytestmark = pytest.mark.django_db(transaction=True)


async def submit(space: Any, user: Any, prompt: str = "hello") -> InferenceRequest:
    outcome = await database_sync_to_async(queue.enqueue)(space, user, {"prompt": prompt})
    await publish(outcome)
    return outcome.request


async def test_it_streams_the_whole_life_of_a_request(make_space: Any, alice: Any) -> None:
    space, token = await database_sync_to_async(make_space)("Echo")
    app, _ = await register("Echo", token)
    blocker = await submit(space, bob_like := alice, "first")  # keeps the app busy so ours waits
    req = await submit(space, bob_like, "second")
    browser = await follow(req.id, alice)
    state = (await browser.recv())["request"]
    assert state["status"] == "queued" and state["position"] == 1
    assert set(state) >= {
        "id", "space", "status", "position", "progress", "message", "text", "outputs", "error",
        "created_at", "started_at", "finished_at",
    }  # fmt: skip
    first = await app.recv()
    assert first["id"] == str(blocker.id)
    await app.send({"type": "result", "id": first["id"], "outputs": {"text": "done"}})
    frame = await app.recv()
    assert frame["id"] == str(req.id)
    assert await browser.recv_type("status") == {"type": "status", "status": "running", "attempt": 1}
    await app.send({"type": "progress", "id": frame["id"], "progress": 0.5, "message": "half"})
    await app.send({"type": "partial", "id": frame["id"], "text": "Hel"})
    await app.send({"type": "partial", "id": frame["id"], "text": "lo"})
    streamed = ""
    progress = None
    while streamed != "Hello":
        got = await browser.recv()
        if got["type"] == "partial":
            streamed += got["text"]
        elif got["type"] == "progress":
            progress = got
    assert progress == {"type": "progress", "progress": 0.5, "message": "half"}
    await app.send({"type": "result", "id": frame["id"], "outputs": {"text": "Hello!"}})
    final = await browser.recv()
    assert final == {"type": "result", "outputs": {"text": "Hello!", "files": []}}
    assert await browser.closed() == 1000
    await app.close()


async def test_it_replays_the_final_state_to_a_late_browser(make_space: Any, alice: Any) -> None:
    space, token = await database_sync_to_async(make_space)("Echo")
    app, _ = await register("Echo", token)
    req = await submit(space, alice)
    frame = await app.recv()
    await app.send({"type": "partial", "id": frame["id"], "text": "partial "})
    await app.send({"type": "error", "id": frame["id"], "message": "boom"})
    await app.send({"type": "ping"})
    await app.recv_type("pong")
    browser = await follow(req.id, alice)
    state = (await browser.recv())["request"]
    assert state["status"] == "failed"
    assert state["error"] == {"code": "app_error", "message": "boom"}
    assert state["text"] == "partial "
    assert await browser.closed() == 1000
    await app.close()


async def test_it_gives_a_reconnecting_browser_all_text_exactly_once(make_space: Any, alice: Any) -> None:
    space, token = await database_sync_to_async(make_space)("Echo")
    app, _ = await register("Echo", token)
    req = await submit(space, alice)
    frame = await app.recv()
    words = [f"w{i} " for i in range(30)]
    browser = await follow(req.id, alice)
    seen = (await browser.recv())["request"]["text"]
    for word in words[:15]:
        await app.send({"type": "partial", "id": frame["id"], "text": word})
    while len(seen) < len("".join(words[:15])):
        got = await browser.recv()
        if got["type"] == "partial":
            seen += got["text"]
    await browser.close()
    for word in words[15:]:
        await app.send({"type": "partial", "id": frame["id"], "text": word})
    await app.send({"type": "ping"})
    await app.recv_type("pong")
    again = await follow(req.id, alice)
    state = (await again.recv())["request"]
    text = state["text"]
    await app.send({"type": "result", "id": frame["id"]})
    while True:
        got = await again.recv()
        if got["type"] == "partial":
            text += got["text"]
        if got["type"] == "result":
            break
    assert text == "".join(words), "the snapshot plus later events hold every partial once, in order"
    await app.close()


async def test_it_refuses_other_users_and_unknown_ids_with_4403(make_space: Any, alice: Any, bob: Any) -> None:
    space, token = await database_sync_to_async(make_space)("Echo")
    app, _ = await register("Echo", token)
    req = await submit(space, alice)
    assert await (await follow(req.id, bob)).closed() == 4403
    assert await (await follow(uuid.uuid4(), alice)).closed() == 4403
    anonymous = await Peer(f"/ws/requests/{req.id}/", [ORIGIN]).connect()
    assert await anonymous.closed() == 4403
    await app.close()


async def test_it_lets_staff_follow_any_request(make_space: Any, alice: Any, staff: Any) -> None:
    space, token = await database_sync_to_async(make_space)("Echo")
    app, _ = await register("Echo", token)
    req = await submit(space, alice)
    watcher = await follow(req.id, staff)
    assert (await watcher.recv())["request"]["id"] == str(req.id)
    await watcher.close()
    await app.close()


@pytest.mark.parametrize("origin", [b"http://evil.example", b"null", None])
async def test_it_refuses_foreign_null_and_missing_origins(make_space: Any, alice: Any, origin: bytes | None) -> None:
    space, token = await database_sync_to_async(make_space)("Echo")
    app, _ = await register("Echo", token)
    req = await submit(space, alice)
    headers = [h for h in await session_headers(alice) if h[0] != b"origin"]
    if origin is not None:
        headers.append((b"origin", origin))
    peer = Peer(f"/ws/requests/{req.id}/", headers)
    connected, _ = await peer.comm.connect(timeout=5)
    assert not connected
    await app.close()


async def test_it_tells_a_queued_request_its_new_position(make_space: Any, alice: Any, bob: Any) -> None:
    space, token = await database_sync_to_async(make_space)("Echo")
    app, _ = await register("Echo", token)
    running = await submit(space, bob, "running")
    ahead = await submit(space, bob, "ahead")
    mine = await submit(space, alice, "mine")
    browser = await follow(mine.id, alice)
    assert (await browser.recv())["request"]["position"] == 2
    frame = await app.recv()
    assert frame["id"] == str(running.id)
    await app.send({"type": "result", "id": frame["id"]})
    assert (await app.recv())["id"] == str(ahead.id)
    assert await browser.recv_type("status") == {"type": "status", "status": "queued", "position": 1}
    await app.close()


@database_sync_to_async
def change_password(user: Any) -> None:
    user.set_password("a-new-password")
    user.save()


@database_sync_to_async
def deactivate(user: Any) -> None:
    user.is_active = False
    user.save()


@database_sync_to_async
def anonymous_session_headers() -> list[tuple[bytes, bytes]]:
    session = SessionStore()
    session["visited"] = True  # a session of someone who never logged in
    session.create()
    return [(b"cookie", f"{settings.SESSION_COOKIE_NAME}={session.session_key}".encode()), ORIGIN]


async def test_it_refuses_stale_and_anonymous_sessions_with_4403(
    make_space: Any, alice: Any, bob: Any, layer: Any
) -> None:
    space, token = await database_sync_to_async(make_space)("Echo")
    app, _ = await register("Echo", token)
    req = await submit(space, alice)
    logged_out = await session_headers(alice)
    await change_password(alice)  # Django logs out the sessions of the old password
    bobs = await session_headers(bob)
    await deactivate(bob)
    for headers in (logged_out, await anonymous_session_headers(), bobs):
        peer = await Peer(f"/ws/requests/{req.id}/", headers).connect()
        assert await peer.closed() == 4403
        await peer.close()
    assert await members(layer, request_group(req.id)) == set(), "a refused socket leaves no group behind"
    await app.close()


async def test_a_queued_follower_watches_the_queue_until_its_request_runs(
    make_space: Any, alice: Any, bob: Any, layer: Any
) -> None:
    space, token = await database_sync_to_async(make_space)("Echo")
    app, _ = await register("Echo", token)
    running = await submit(space, bob, "running")
    ahead = await submit(space, bob, "ahead")
    mine = await submit(space, alice, "mine")
    browser = await follow(mine.id, alice)
    assert (await browser.recv())["request"]["position"] == 2
    following = await members(layer, request_group(mine.id))
    assert len(following) == 1
    assert await members(layer, space_group(space.pk)) == following, "queued: it hears the queue move"
    assert (await app.recv())["id"] == str(running.id)
    await app.send({"type": "result", "id": str(running.id)})
    assert (await app.recv())["id"] == str(ahead.id)
    assert await browser.recv_type("status") == {"type": "status", "status": "queued", "position": 1}
    await app.send({"type": "result", "id": str(ahead.id)})
    assert (await app.recv())["id"] == str(mine.id)
    assert await browser.recv_type("status") == {"type": "status", "status": "running", "attempt": 1}
    assert await members(layer, space_group(space.pk)) == set(), "running: queue moves no longer concern it"
    assert await members(layer, request_group(mine.id)) == following
    await app.send({"type": "result", "id": str(mine.id), "outputs": {"text": "done"}})
    assert await browser.recv_type("result")
    assert await browser.closed() == 1000
    await browser.close()
    assert await members(layer, request_group(mine.id)) == set()
    await app.close()


async def test_a_running_follower_stays_out_of_the_queue_until_a_requeue(
    make_space: Any, alice: Any, bob: Any, layer: Any
) -> None:
    space, token = await database_sync_to_async(make_space)("Echo")
    app, _ = await register("Echo", token)
    mine = await submit(space, alice)
    assert (await app.recv())["id"] == str(mine.id)
    browser = await follow(mine.id, alice)
    assert (await browser.recv())["request"]["status"] == "running"
    assert await members(layer, space_group(space.pk)) == set()
    await app.close()  # the app went away: the request goes back to the head of the queue
    assert await browser.recv_type("status") == {"type": "status", "status": "queued", "position": 1, "attempt": 1}
    assert await members(layer, space_group(space.pk)) == await members(layer, request_group(mine.id))
    await browser.close()
    assert await members(layer, space_group(space.pk)) == set()


async def test_the_resync_repairs_a_queue_move_it_did_not_hear(
    make_space: Any, alice: Any, bob: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(browser_consumers, "RESYNC_SECONDS", 0.2)
    space, token = await database_sync_to_async(make_space)("Echo")
    app, _ = await register("Echo", token)
    await submit(space, bob, "running")
    ahead = await submit(space, bob, "ahead")
    mine = await submit(space, alice, "mine")
    browser = await follow(mine.id, alice)
    assert (await browser.recv())["request"]["position"] == 2
    # The request ahead leaves the queue with no event (one lost on the way, or sent before the
    # follower joined the space's group): the database still says where this one stands.
    await database_sync_to_async(InferenceRequest.objects.filter(pk=ahead.pk).update)(status=Status.CANCELLED)
    assert await browser.recv() == {"type": "status", "status": "queued", "position": 1}
    await browser.close()
    await app.close()
