"""What one browser socket's connect costs the hub: database hops (thread handoffs) and queries.

Each `database_sync_to_async` call is a hop to a worker thread and back; the profile of issue 7
found the connect of `/ws/requests/<id>/` spending most of its time in three of them. A change
that adds a hop or a query here must say why.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import pytest
from channels.db import DatabaseSyncToAsync, database_sync_to_async
from django.db import connections
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from relay.models import InferenceRequest, Status
from tests.relay.conftest import ORIGIN, Peer, session_headers
from tests.relay.helpers import connect_app, submit

pytestmark = pytest.mark.django_db(transaction=True)

Hop = tuple[str, list[str]]  # the function run on the worker thread, and the SQL it ran there


@contextmanager
def hops_counted() -> Iterator[list[Hop]]:
    """Every database hop of this process while inside, with the statements each one ran."""
    hops: list[Hop] = []
    original = DatabaseSyncToAsync.thread_handler

    def counted(self: DatabaseSyncToAsync, loop: Any, *args: Any, **kwargs: Any) -> Any:
        # Runs on the worker thread, so the capture sees that thread's connection.
        ctx = CaptureQueriesContext(connections["default"])
        ctx.__enter__()
        try:
            return original(self, loop, *args, **kwargs)
        finally:
            ctx.__exit__(None, None, None)
            sql = [q["sql"] for q in ctx.captured_queries if "SAVEPOINT" not in q["sql"]]
            hops.append((getattr(self.func, "__name__", repr(self.func)), sql))

    with mock.patch.object(DatabaseSyncToAsync, "thread_handler", counted):
        yield hops


async def connect_cost(path: str, headers: list[tuple[bytes, bytes]]) -> tuple[dict[str, Any], list[Hop]]:
    """Open a socket and wait for its first frame, counting the hops on the way."""
    peer = Peer(path, headers)
    with hops_counted() as hops:
        await peer.connect()
        first = await peer.recv()
    await peer.close()
    return first, hops


def queued_and_running(make_space: Any, alice: Any) -> tuple[Any, Any]:
    space, _ = make_space("Echo")
    connect_app(space)
    running = submit(space, alice, "running")
    # Running as an app's claim leaves it (the claim itself is the queue's business, tested there).
    InferenceRequest.objects.filter(pk=running.pk).update(
        status=Status.RUNNING, connection_id="conn-1", attempt=1, started_at=timezone.now(), seq=F("seq") + 1
    )
    return submit(space, alice, "queued"), running


async def test_following_a_queued_request_takes_one_hop_and_four_queries(make_space: Any, alice: Any) -> None:
    queued, _ = await database_sync_to_async(queued_and_running)(make_space, alice)
    first, hops = await connect_cost(f"/ws/requests/{queued.id}/", await session_headers(alice))
    assert first["request"]["position"] == 1
    assert len(hops) == 1, hops
    # the session, its user, the request with its space, the queue ahead of it
    assert len(hops[0][1]) == 4, hops


async def test_following_a_running_request_takes_one_hop_and_three_queries(make_space: Any, alice: Any) -> None:
    _, running = await database_sync_to_async(queued_and_running)(make_space, alice)
    first, hops = await connect_cost(f"/ws/requests/{running.id}/", await session_headers(alice))
    assert first["request"]["status"] == "running"
    assert len(hops) == 1, hops
    assert len(hops[0][1]) == 3, hops  # no position to count


async def test_a_refused_follower_costs_one_hop_too(make_space: Any, alice: Any, bob: Any) -> None:
    queued, _ = await database_sync_to_async(queued_and_running)(make_space, alice)
    peer = Peer(f"/ws/requests/{queued.id}/", await session_headers(bob))
    with hops_counted() as hops:
        await peer.connect()
        assert await peer.closed() == 4403
    await peer.close()
    assert len(hops) == 1, hops
    assert len(hops[0][1]) == 3, hops  # the session, its user, the request (not bob's: none)


async def test_a_follower_without_a_session_costs_no_hop(make_space: Any, alice: Any) -> None:
    queued, _ = await database_sync_to_async(queued_and_running)(make_space, alice)
    peer = Peer(f"/ws/requests/{queued.id}/", [ORIGIN])
    with hops_counted() as hops:
        await peer.connect()
        assert await peer.closed() == 4403
    await peer.close()
    assert hops == []  # no session cookie: nobody to look up


async def test_watching_a_space_logged_in_takes_one_hop(make_space: Any, alice: Any) -> None:
    await database_sync_to_async(make_space)("Echo")
    first, hops = await connect_cost("/ws/spaces/echo/", await session_headers(alice))
    assert first == {"type": "space", "connected": False, "queue_size": 0}
    assert [name for name, _ in hops] == ["_space_status"], "the space's status is public: no user lookup"
