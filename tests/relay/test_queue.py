"""relay.queue: each state change is one conditional UPDATE; the first outcome wins."""

from datetime import timedelta
from typing import Any

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from relay import queue
from relay.events import APP_ENDED, APP_WAKE
from relay.models import AppLease, InferenceRequest
from tests.relay.helpers import connect_app, reload, submit


@pytest.fixture
def space(make_space: Any) -> Any:
    space, _ = make_space("Echo")
    connect_app(space, "conn-1")
    return space


def test_it_claims_in_fifo_order_one_at_a_time(space: Any, alice: Any) -> None:
    first, second = submit(space, alice, "1"), submit(space, alice, "2")
    claimed = queue.claim_next(space, "conn-1")
    assert claimed.request.id == first.id
    assert (claimed.request.status, claimed.request.attempt, claimed.request.connection_id) == ("running", 1, "conn-1")
    assert claimed.request.deadline > timezone.now() + timedelta(seconds=110)
    assert not queue.claim_next(space, "conn-1").won, "one running request per space"
    assert queue.position(reload(second)) == 1
    queue.finish(first.id, "conn-1", {"text": "ok"})
    assert queue.claim_next(space, "conn-1").request.id == second.id


def test_the_database_refuses_two_running_requests_in_one_space(space: Any, alice: Any) -> None:
    first, second = submit(space, alice), submit(space, alice)
    InferenceRequest.objects.filter(pk=first.pk).update(status="running")
    with pytest.raises(IntegrityError), transaction.atomic():
        InferenceRequest.objects.filter(pk=second.pk).update(status="running")


def test_only_the_lease_holder_claims(space: Any, alice: Any) -> None:
    submit(space, alice)
    assert not queue.claim_next(space, "somebody-else").won


def test_it_wakes_the_app_and_announces_the_queue_on_enqueue(space: Any, alice: Any) -> None:
    outcome = queue.enqueue(space, alice, {"prompt": "hi"})
    assert ("fake.channel.conn-1", {"type": APP_WAKE}) in outcome.direct_events
    status = [event for group, event in outcome.group_events if group == f"space.{space.pk}"]
    assert status[-1]["queue_size"] == 1 and status[-1]["connected"] is True


def test_stream_writes_are_conditional_on_connection_and_seq(space: Any, alice: Any) -> None:
    submit(space, alice)
    req = queue.claim_next(space, "conn-1").request
    assert queue.record_stream(req.id, "conn-1", req.seq, "Hel", None, []).won
    assert not queue.record_stream(req.id, "conn-1", req.seq, "stale", None, []).won, "seq moved on"
    assert not queue.record_stream(req.id, "other", req.seq + 1, "thief", None, []).won
    assert queue.record_stream(req.id, "conn-1", req.seq + 1, "lo", (0.5, "half"), []).won
    row = reload(req)
    assert (row.text, row.progress, row.message, row.seq) == ("Hello", 0.5, "half", req.seq + 2)


def test_the_first_terminal_outcome_wins(space: Any, alice: Any) -> None:
    submit(space, alice)
    req = queue.claim_next(space, "conn-1").request
    cancelled = queue.cancel(req.id)
    assert cancelled.won
    assert ("fake.channel.conn-1", {"type": APP_ENDED, "id": str(req.id), "reason": "cancelled"}) in (
        cancelled.direct_events
    )
    assert not queue.finish(req.id, "conn-1", {"text": "late"}).won
    assert not queue.fail(req.id, "conn-1", "late").won
    assert not queue.time_out(req.id).won
    assert not queue.cancel(req.id).won
    assert reload(req).status == "cancelled"


def test_time_out_waits_for_the_deadline(space: Any, alice: Any) -> None:
    submit(space, alice)
    req = queue.claim_next(space, "conn-1").request
    assert not queue.time_out(req.id).won
    InferenceRequest.objects.filter(pk=req.pk).update(deadline=timezone.now() - timedelta(seconds=1))
    outcome = queue.time_out(req.id)
    assert outcome.won
    assert outcome.request.error == {"code": "timed_out", "message": "The app did not finish within 120 seconds."}
    assert ("fake.channel.conn-1", {"type": APP_ENDED, "id": str(req.id), "reason": "timeout"}) in (
        outcome.direct_events
    )


def test_requeue_puts_it_back_at_the_head_and_fails_after_three_sends(space: Any, alice: Any) -> None:
    req = submit(space, alice, "first")
    later = submit(space, alice, "later")
    for attempt in (1, 2):
        assert queue.claim_next(space, "conn-1").request.id == req.id
        assert queue.requeue(req.id, "conn-1").request.status == "queued"
        assert queue.position(reload(req)) == 1
        assert reload(req).attempt == attempt
    assert queue.claim_next(space, "conn-1").request.attempt == 3
    failed = queue.requeue(req.id, "conn-1")
    assert (failed.request.status, failed.request.error_code) == ("failed", "app_disconnected")
    assert queue.claim_next(space, "conn-1").request.id == later.id


def expire_lease(space: Any, seconds_ago: int) -> None:
    AppLease.objects.filter(space=space).update(expires_at=timezone.now() - timedelta(seconds=seconds_ago))


def test_the_sweep_requeues_the_request_of_a_dead_connection(space: Any, alice: Any) -> None:
    req = submit(space, alice)
    queue.claim_next(space, "conn-1")
    assert not queue.sweep().group_events, "nothing to do while the lease lives"
    expire_lease(space, 1)
    queue.sweep()
    assert (reload(req).status, reload(req).attempt) == ("queued", 1)
    assert not any(e["type"] == "request.event" for _, e in queue.sweep().group_events), "idempotent"


def test_the_sweep_times_out_overdue_requests(space: Any, alice: Any) -> None:
    req = submit(space, alice)
    queue.claim_next(space, "conn-1")
    InferenceRequest.objects.filter(pk=req.pk).update(deadline=timezone.now() - timedelta(seconds=10))
    queue.sweep()
    assert reload(req).status == "timed_out"


def test_queued_requests_wait_60_seconds_for_the_app_to_come_back(space: Any, alice: Any) -> None:
    req = submit(space, alice)
    expire_lease(space, 30)
    queue.sweep()
    assert reload(req).status == "queued", "still within the 60 s wait"
    expire_lease(space, 61)
    queue.sweep()
    assert (reload(req).status, reload(req).error_code) == ("failed", "app_disconnected")


def test_a_new_app_takes_over_an_expired_lease_and_its_request(space: Any, alice: Any) -> None:
    req = submit(space, alice)
    queue.claim_next(space, "conn-1")
    from relay import errors

    with pytest.raises(errors.DuplicateConnection):
        queue.acquire_lease(space, "conn-2", "fake.channel.conn-2", {}, "")
    expire_lease(space, 1)
    queue.acquire_lease(space, "conn-2", "fake.channel.conn-2", {}, "")
    assert reload(req).status == "queued", "the dead connection's request went back to the queue"
    again = queue.claim_next(space, "conn-2").request
    assert (again.id, again.attempt) == (req.id, 2)
    assert not queue.renew_lease(space.pk, "conn-1"), "the old connection's lease is gone"
