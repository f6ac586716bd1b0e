"""What one browser socket's connect costs the hub: database hops (thread handoffs) and queries.

Each `database_sync_to_async` call is a hop to a worker thread and back; the profile of issue 7
found the connect of `/ws/requests/<id>/` spending most of its time in three of them, plus
channels' own hop before every handler. A change that adds a hop or a query here must say why.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import pytest
from asgiref.sync import SyncToAsync
from channels.db import database_sync_to_async
from django.db import connections
from django.db.models import F
from django.utils import timezone

from relay.events import Outcome, publish
from relay.models import InferenceRequest, Status
from tests.relay.conftest import ORIGIN, Peer, session_headers
from tests.relay.helpers import connect_app, submit

pytestmark = pytest.mark.django_db(transaction=True)

Hop = tuple[str, list[str]]  # the function run on the worker thread, and the SQL it ran there


@contextmanager
def hops_counted() -> Iterator[list[Hop]]:
    """Every hop of this process to a sync thread while inside, with the statements each one ran.

    Database calls and plain `sync_to_async` ones alike (channels' own `close_old_connections`
    before each handler is one): each costs a thread handoff and back.
    """
    hops: list[Hop] = []
    original = SyncToAsync.thread_handler

    def counted(self: SyncToAsync, loop: Any, *args: Any, **kwargs: Any) -> Any:
        statements: list[str] = []

        def record(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
            if "SAVEPOINT" not in sql:  # bookkeeping, not a query
                statements.append(sql)
            return execute(sql, params, many, context)

        # Runs on the sync thread, so the wrapper sees that thread's connection.
        with connections["default"].execute_wrapper(record):
            try:
                return original(self, loop, *args, **kwargs)
            finally:
                hops.append((getattr(self.func, "__name__", repr(self.func)), statements))

    with mock.patch.object(SyncToAsync, "thread_handler", counted):
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


async def test_an_event_reaches_a_follower_without_a_hop(make_space: Any, alice: Any) -> None:
    _, running = await database_sync_to_async(queued_and_running)(make_space, alice)
    peer = await Peer(f"/ws/requests/{running.id}/", await session_headers(alice)).connect()
    seq = (await peer.recv())["request"]["seq"]
    outcome = Outcome()
    outcome.to_request(InferenceRequest(id=running.id, seq=seq + 1), [{"type": "partial", "text": "hi"}])
    with hops_counted() as hops:
        await publish(outcome)
        assert await peer.recv() == {"type": "partial", "text": "hi"}
    await peer.close()
    assert hops == []  # no per-handler close_old_connections: the consumer's database work is in db_call
