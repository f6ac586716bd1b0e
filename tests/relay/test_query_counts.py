"""The hot path's database queries, counted: a change that adds one must say why here."""

from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from relay import files, queue
from tests.relay.helpers import connect_app


def real(ctx: CaptureQueriesContext) -> list[str]:
    """Statements that reach the database's planner (savepoints are bookkeeping)."""
    return [q["sql"] for q in ctx.captured_queries if "SAVEPOINT" not in q["sql"]]


@pytest.fixture
def echo(make_space: Any) -> Any:
    space, _ = make_space("Echo")
    connect_app(space, "conn-1")
    return space


def test_enqueue_takes_three_queries(echo: Any, alice: Any) -> None:
    with CaptureQueriesContext(connection) as ctx:
        queue.enqueue(echo, alice, {"prompt": "x"})
    # lock the space; the app's channel and both queue counts in one; insert
    assert len(real(ctx)) == 3, real(ctx)


def test_claim_takes_one_query_when_nothing_else_waits(echo: Any, alice: Any) -> None:
    queue.enqueue(echo, alice, {"prompt": "x"})
    with CaptureQueriesContext(connection) as ctx:
        outcome = queue.claim_next(echo, "conn-1")
        files.request_inputs(outcome.request, "http://hub")
    # the conditional UPDATE of the head (lease checked inside; the frame's fields and the count of
    # what still waits returned)
    assert outcome.won
    assert len(real(ctx)) == 1, real(ctx)
    (_group, event) = next(e for e in outcome.group_events if e[1]["type"] == "space.status")
    assert (event["queue_size"], event["queued_ids"]) == (0, [])


def test_claim_takes_two_queries_when_others_wait(echo: Any, alice: Any, bob: Any) -> None:
    queue.enqueue(echo, alice, {"prompt": "x"})
    second = queue.enqueue(echo, bob, {"prompt": "y"}).request
    with CaptureQueriesContext(connection) as ctx:
        outcome = queue.claim_next(echo, "conn-1")
    # the UPDATE, then the queue's order for the positions of those still waiting
    assert len(real(ctx)) == 2, real(ctx)
    (_group, event) = next(e for e in outcome.group_events if e[1]["type"] == "space.status")
    assert (event["queue_size"], event["queued_ids"]) == (1, [str(second.id)])


def test_a_claim_of_an_empty_queue_takes_two_queries(echo: Any) -> None:
    with CaptureQueriesContext(connection) as ctx:
        assert not queue.claim_next(echo, "conn-1").won
    # the UPDATE that matches nothing, then whether anything is queued at all
    assert len(real(ctx)) == 2, real(ctx)


def test_a_streamed_chunk_takes_one_query_and_the_result_one(echo: Any, alice: Any) -> None:
    queue.enqueue(echo, alice, {"prompt": "x"})
    req = queue.claim_next(echo, "conn-1").request
    with CaptureQueriesContext(connection) as ctx:
        queue.record_stream(req.id, "conn-1", req.seq, "chunk", (0.5, None), [])
    assert len(real(ctx)) == 1, real(ctx)
    with CaptureQueriesContext(connection) as ctx:
        queue.finish(req.id, "conn-1", {"text": "ok", "files": []})
    assert len(real(ctx)) == 1, real(ctx)  # the conditional UPDATE, returning what the final frame needs


def test_a_json_submit_takes_six_queries(client: Client, echo: Any, alice: Any) -> None:
    client.force_login(alice)
    with CaptureQueriesContext(connection) as ctx:
        response = client.post("/spaces/echo/requests/", {"prompt": "x"}, HTTP_ACCEPT="application/json")
    assert response.status_code == 201
    # session, user, space, then enqueue's three
    assert len(real(ctx)) == 6, real(ctx)
