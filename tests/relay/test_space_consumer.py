"""`/ws/spaces/<slug>/`: connected and queue size, on connect and on every change."""

from typing import Any

import pytest
from channels.db import database_sync_to_async

from relay import queue
from relay.consumers.space import SETTLE_SECONDS
from relay.events import Outcome, publish
from relay.models import space_group
from tests.relay.conftest import ORIGIN, Peer, members, register

pytestmark = pytest.mark.django_db(transaction=True)


async def test_it_shows_the_app_and_the_queue_live(make_space: Any, alice: Any) -> None:
    space, token = await database_sync_to_async(make_space)("Echo")
    watcher = await Peer("/ws/spaces/echo/", [ORIGIN]).connect()
    assert await watcher.recv() == {"type": "space", "connected": False, "queue_size": 0}
    app, _ = await register("Echo", token)
    assert await watcher.recv() == {"type": "space", "connected": True, "queue_size": 0}
    for prompt in ("one", "two"):
        await publish(await database_sync_to_async(queue.enqueue)(space, alice, {"prompt": prompt}))
    await app.recv_type("request")
    frames = []
    while not await watcher.nothing(SETTLE_SECONDS + 0.5):  # events, then the database's last word
        frames.append(await watcher.recv())
    assert frames, "the watcher heard of the submissions"
    assert all(f["connected"] for f in frames)
    assert frames[-1]["queue_size"] == 1, "two submitted, the app took one"
    await app.close()
    frame = await watcher.recv()
    while frame["connected"]:
        frame = await watcher.recv()
    assert frame == {"type": "space", "connected": False, "queue_size": 2}, "the running one went back to the queue"
    await watcher.close()


async def test_a_stale_event_is_corrected_from_the_database(make_space: Any, alice: Any) -> None:
    """Two senders may publish in the other order than they committed: the database has the last word."""
    space, token = await database_sync_to_async(make_space)("Echo")
    app, _ = await register("Echo", token)
    watchers = [await Peer("/ws/spaces/echo/", [ORIGIN]).connect() for _ in range(2)]
    for watcher in watchers:
        assert await watcher.recv() == {"type": "space", "connected": True, "queue_size": 0}
        assert await watcher.nothing(SETTLE_SECONDS + 0.3), "the re-read after joining changes nothing"
    stale = Outcome()
    stale.to_space(space.pk, {"connected": True, "queue_size": 7, "queued_ids": None})
    await publish(stale)
    for watcher in watchers:
        assert await watcher.recv() == {"type": "space", "connected": True, "queue_size": 7}
    for watcher in watchers:
        assert await watcher.recv(SETTLE_SECONDS + 2) == {"type": "space", "connected": True, "queue_size": 0}
        assert await watcher.nothing(SETTLE_SECONDS + 0.3), "one re-read, then quiet"
        await watcher.close()
    await app.close()


async def test_one_watcher_per_process_joins_the_group_for_all_and_hands_it_on(make_space: Any, layer: Any) -> None:
    space, token = await database_sync_to_async(make_space)("Echo")
    watchers = []
    for _ in range(3):  # one after the other: the first to show its status is the group's member
        watchers.append(await Peer("/ws/spaces/echo/", [ORIGIN]).connect())
        assert await watchers[-1].recv() == {"type": "space", "connected": False, "queue_size": 0}
    first = await members(layer, space_group(space.pk))
    assert len(first) == 1, "one message per process, whatever the number of its watchers"
    await watchers[0].close()
    then = await members(layer, space_group(space.pk))
    assert len(then) == 1 and then != first, "the membership went to a watcher still open"
    app, _ = await register("Echo", token)
    for watcher in watchers[1:]:
        # The event, not the re-read: it comes well before SETTLE_SECONDS.
        assert await watcher.recv(SETTLE_SECONDS / 2) == {"type": "space", "connected": True, "queue_size": 0}
        await watcher.close()
    assert await members(layer, space_group(space.pk)) == set(), "the last one out leaves the group"
    await app.close()


async def test_it_closes_4404_for_an_unknown_or_inactive_space(make_space: Any) -> None:
    await database_sync_to_async(make_space)("Echo", is_active=False)
    for slug in ("echo", "nope"):
        watcher = await Peer(f"/ws/spaces/{slug}/", [ORIGIN]).connect()
        assert await watcher.closed() == 4404


async def test_it_refuses_a_foreign_origin(make_space: Any) -> None:
    await database_sync_to_async(make_space)("Echo")
    peer = Peer("/ws/spaces/echo/", [(b"origin", b"https://evil.example")])
    connected, _ = await peer.comm.connect(timeout=5)
    assert not connected


async def test_an_unknown_websocket_path_is_closed_with_4404(db: Any) -> None:
    peer = await Peer("/ws/nowhere/", [ORIGIN]).connect()
    assert await peer.closed() == 4404
