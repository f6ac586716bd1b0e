"""The durable per-space queue: every state change of a request, each one conditional UPDATE.

Each function changes the database first, then returns an `Outcome` whose events the
caller publishes (`events.publish` / `publish_sync`). A change made by a racing
process (another claim, a cancel, a timeout) makes the conditional UPDATE match no
row, and the loser's Outcome has no request: the first terminal outcome wins.
"""

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Concat
from django.utils import timezone

from relay import errors, sql
from relay.events import APP_ENDED, APP_WAKE, QUEUED_IDS_IN_STATUS, Outcome, final_frame
from relay.models import AppLease, InferenceRequest, Status
from spaces.models import Space

log = logging.getLogger("relay.queue")

MAX_ATTEMPTS = 3
LEASE_TTL = timedelta(seconds=20)
REQUEUE_WAIT = timedelta(seconds=60)


def _log(event: str, **fields: Any) -> None:
    """One logfmt line per lifecycle event: `event=request.finished id=... space=Echo status=...`."""

    def value(v: Any) -> str:
        text = f"{v:.3f}" if isinstance(v, float) else str(v)
        return f'"{text}"' if (not text or any(c in text for c in ' ="')) else text

    line = " ".join([f"event={event}", *(f"{k}={value(v)}" for k, v in fields.items())])
    # The fields also ride along as record attributes: LOG_FORMAT=json shows them as keys.
    log.info(line, extra={"event": event, **{k: str(v) for k, v in fields.items()}})


def _now():  # type: ignore[no-untyped-def]
    return timezone.now()


def max_queued_per_user() -> int:
    return int(getattr(settings, "RELAY_MAX_QUEUED_PER_USER", 5))


# --- reads ----------------------------------------------------------------------------


def live_leases(space_id: int | None = None):  # type: ignore[no-untyped-def]
    qs = AppLease.objects.filter(released_at__isnull=True, expires_at__gt=_now())
    return qs.filter(space_id=space_id) if space_id is not None else qs


def is_connected(space_id: int) -> bool:
    return live_leases(space_id).exists()


def queued_ids(space_id: int, limit: int = QUEUED_IDS_IN_STATUS) -> list[str]:
    qs = InferenceRequest.objects.filter(space_id=space_id, status=Status.QUEUED).order_by("created_at", "id")
    return [str(pk) for pk in qs.values_list("id", flat=True)[:limit]]


def queue_size(space_id: int) -> int:
    return InferenceRequest.objects.filter(space_id=space_id, status=Status.QUEUED).count()


def space_status(space_id: int) -> dict[str, Any]:
    ids = queued_ids(space_id)
    size = len(ids) if len(ids) < QUEUED_IDS_IN_STATUS else queue_size(space_id)
    return {"connected": is_connected(space_id), "queue_size": size, "queued_ids": ids}


def position(req: InferenceRequest) -> int | None:
    """1 for the next request to run; None unless queued."""
    if req.status != Status.QUEUED:
        return None
    ahead = InferenceRequest.objects.filter(space_id=req.space_id, status=Status.QUEUED).filter(
        Q(created_at__lt=req.created_at) | Q(created_at=req.created_at, id__lt=req.id)
    )
    return ahead.count() + 1


def _reload(request_id: Any) -> InferenceRequest:
    return InferenceRequest.objects.select_related("space").get(pk=request_id)


def _app_channel(space_id: int) -> str | None:
    return live_leases(space_id).values_list("channel_name", flat=True).first()


def _with_space_status(outcome: Outcome, space_id: int) -> Outcome:
    outcome.to_space(space_id, space_status(space_id))
    return outcome


# --- enqueue --------------------------------------------------------------------------


def enqueue(space: Space, user: Any, inputs: dict[str, Any], files: list[dict[str, Any]] | None = None) -> Outcome:
    """Commit a new queued request (and its input files) or raise a RelayError."""
    from relay import files as relay_files

    now = _now()
    req = InferenceRequest(space=space, user=user, inputs=inputs, created_at=now)
    with transaction.atomic():
        sql.lock_space(space.pk)
        channel, total, mine = sql.enqueue_checks(space.pk, user.pk, now)
        if channel is None:
            raise errors.AppNotConnected()
        if total >= space.max_queue_size:
            raise errors.QueueFull()
        if mine >= max_queued_per_user():
            raise errors.UserQueueFull()
        sql.insert(req)
        for upload in files or []:
            relay_files.save_input(req, upload["field"], upload["file"])
    req._state.adding = False
    outcome = Outcome(request=req)
    outcome.position = total + 1  # the new request is last; nobody else's position moved
    outcome.to_app(channel, {"type": APP_WAKE})
    _log("request.submitted", id=req.id, space=space.name, user=user.pk, files=len(files or []))
    outcome.to_space(space.pk, {"connected": True, "queue_size": total + 1, "queued_ids": None})
    return outcome


# --- dispatch -------------------------------------------------------------------------


def claim_next(space: Space, connection_id: str) -> Outcome:
    """Take the head of the space's queue for this connection, if it holds the space's lease.

    `space` supplies the timeout and the features of the request frame: the app consumer keeps it
    fresh (its heartbeat reloads it), so staff's changes apply from the next request on.
    """
    for _ in range(5):
        now = _now()
        deadline = now + timedelta(seconds=space.timeout_seconds)
        try:
            with transaction.atomic():
                row = sql.claim(space.pk, connection_id, now, deadline)
        except IntegrityError:
            return Outcome()  # another request of this space is running
        if row is None:
            queued, holds_lease = sql.claim_blocked(space.pk, connection_id, now)
            if queued and holds_lease:
                continue  # the head was cancelled or claimed meanwhile: try the next one
            return Outcome()
        request_id, attempt, seq, inputs, user_id, created_at, still_queued = row
        req = InferenceRequest(
            id=sql.to_uuid(request_id),
            space=space,
            user_id=user_id,
            status=Status.RUNNING,
            inputs=sql.to_json("inputs", inputs),
            attempt=attempt,
            connection_id=connection_id,
            seq=seq,
            created_at=sql.to_datetime(created_at),
            started_at=now,
            deadline=deadline,
        )
        req._state.adding = False
        outcome = Outcome(request=req)
        outcome.to_request(req, [{"type": "status", "status": "running", "attempt": attempt}])
        _log("request.dispatched", id=req.id, space=space.name, attempt=attempt, conn=connection_id)
        ids = sql.queued_ids(space.pk, QUEUED_IDS_IN_STATUS) if still_queued else []
        size = len(ids) if len(ids) < QUEUED_IDS_IN_STATUS else int(still_queued)
        outcome.to_space(space.pk, {"connected": True, "queue_size": size, "queued_ids": ids})
        return outcome
    return Outcome()


def running_for(connection_id: str) -> InferenceRequest | None:
    return InferenceRequest.objects.filter(status=Status.RUNNING, connection_id=connection_id).first()


# --- while running --------------------------------------------------------------------


def record_stream(
    request_id: Any,
    connection_id: str,
    seq: int,
    text: str,
    progress: tuple[float | None, str | None] | None,
    frames: list[dict[str, Any]],
) -> Outcome:
    """Append streamed text and/or set progress, if the request is still this connection's at `seq`."""
    changes: dict[str, Any] = {"seq": seq + 1}
    if text:
        changes["text"] = Concat(F("text"), Value(text))
    if progress is not None:
        changes["progress"], changes["message"] = progress
    won = InferenceRequest.objects.filter(
        id=request_id, status=Status.RUNNING, connection_id=connection_id, seq=seq
    ).update(**changes)
    if not won:
        return Outcome()
    req = InferenceRequest(id=request_id, seq=seq + 1)
    outcome = Outcome(request=req)
    outcome.to_request(req, frames)
    return outcome


def _end(
    request_id: Any, where: str, params: list[Any], status: str, code: str = "", message: str = "", **changes: Any
) -> Outcome:
    """End a queued or running request if the SQL condition `where` holds; announce its final frame."""
    now = _now()
    prepared = {
        "status": status,
        "error_code": code,
        "error_message": message,
        "finished_at": sql.when(now),
        **{name: InferenceRequest._meta.get_field(name).get_db_prep_save(v, connection) for name, v in changes.items()},
    }
    row = sql.end(request_id, where, params, prepared)
    if row is None:
        return Outcome()
    space_name = row.pop("space_name")
    req = InferenceRequest(
        id=sql.to_uuid(request_id), status=status, error_code=code, error_message=message, finished_at=now, **row
    )
    req._state.adding = False
    outcome = Outcome(request=req)
    outcome.to_request(req, [final_frame(req)], final=True)
    processing = (now - req.started_at).total_seconds() if req.started_at else 0.0
    _log(
        "request.timed_out" if status == Status.TIMED_OUT else "request.finished",
        id=req.id,
        space=space_name,
        status=status,
        code=code or "-",
        attempt=req.attempt,
        total=(now - req.created_at).total_seconds(),
        processing=processing,
    )
    return outcome


def finish(request_id: Any, connection_id: str, outputs: dict[str, Any]) -> Outcome:
    """The app's result. `outputs` holds `text` (optional) and stored `files` entries."""
    changes: dict[str, Any] = {"outputs": outputs, "progress": 1.0}
    if "text" in outputs:
        changes["text"] = outputs["text"]
    where, params = "status = %s AND connection_id = %s", [Status.RUNNING, connection_id]
    return _end(request_id, where, params, Status.SUCCEEDED, **changes)


def fail(request_id: Any, connection_id: str, message: str) -> Outcome:
    """The app answered `error`."""
    where, params = "status = %s AND connection_id = %s", [Status.RUNNING, connection_id]
    return _end(request_id, where, params, Status.FAILED, "app_error", message)


def time_out(request_id: Any, grace: timedelta = timedelta(0)) -> Outcome:
    """End a running request past its deadline; tell its app (wherever it is) to stop."""
    req = InferenceRequest.objects.filter(id=request_id).values("space__timeout_seconds", "connection_id").first()
    if req is None:
        return Outcome()
    seconds = req["space__timeout_seconds"]
    outcome = _end(
        request_id,
        "status = %s AND deadline <= %s",
        [Status.RUNNING, sql.when(_now() - grace)],
        Status.TIMED_OUT,
        "timed_out",
        f"The app did not finish within {seconds} seconds.",
    )
    if outcome.won:
        _tell_app(outcome, outcome.request, "timeout")  # type: ignore[arg-type]
    return outcome


def cancel(request_id: Any) -> Outcome:
    """Cancel a queued or running request (its submitter or staff asked)."""
    message = "The request was cancelled."
    outcome = _end(request_id, "status = %s", [Status.RUNNING], Status.CANCELLED, "cancelled", message)
    if outcome.won:
        _tell_app(outcome, outcome.request, "cancelled")  # type: ignore[arg-type]
    else:
        outcome = _end(request_id, "status = %s", [Status.QUEUED], Status.CANCELLED, "cancelled", message)
    if not outcome.won:
        return outcome
    return _with_space_status(outcome, outcome.request.space_id)  # type: ignore[union-attr]


def _tell_app(outcome: Outcome, req: InferenceRequest, reason: str) -> None:
    channel = (
        live_leases(req.space_id).filter(connection_id=req.connection_id).values_list("channel_name", flat=True).first()
    )
    if channel:
        outcome.to_app(channel, {"type": APP_ENDED, "id": str(req.id), "reason": reason})


def requeue(request_id: Any, connection_id: str) -> Outcome:
    """The app holding the request went away: back to the head of the queue, or fail after 3 sends."""
    base = Q(status=Status.RUNNING, connection_id=connection_id)
    failed = _end(
        request_id,
        "status = %s AND connection_id = %s AND attempt >= %s",
        [Status.RUNNING, connection_id, MAX_ATTEMPTS],
        Status.FAILED,
        "app_disconnected",
        f"The app disconnected {MAX_ATTEMPTS} times while working on this request.",
    )
    if failed.won:
        return _with_space_status(failed, failed.request.space_id)  # type: ignore[union-attr]
    won = InferenceRequest.objects.filter(base, id=request_id).update(
        status=Status.QUEUED, connection_id="", deadline=None, progress=None, message=None, seq=F("seq") + 1
    )
    if not won:
        return Outcome()
    req = _reload(request_id)
    outcome = Outcome(request=req)
    outcome.to_request(req, [{"type": "status", "status": "queued", "position": position(req), "attempt": req.attempt}])
    _log("request.requeued", id=req.id, space=req.space.name, attempt=req.attempt, conn=connection_id)
    channel = _app_channel(req.space_id)
    if channel:
        outcome.to_app(channel, {"type": APP_WAKE})
    return _with_space_status(outcome, req.space_id)


# --- presence -------------------------------------------------------------------------


def acquire_lease(
    space: Space, connection_id: str, channel_name: str, client: dict[str, Any], remote_addr: str
) -> Outcome:
    """Register a connection as the space's one app; raise DuplicateConnection if one is alive."""
    now = _now()
    fields = {
        "connection_id": connection_id,
        "channel_name": channel_name,
        "client": client,
        "remote_addr": remote_addr,
        "connected_at": now,
        "expires_at": now + LEASE_TTL,
        "released_at": None,
    }
    taken = AppLease.objects.filter(space=space).filter(Q(released_at__isnull=False) | Q(expires_at__lte=now))
    if not taken.update(**fields):
        try:
            with transaction.atomic():
                AppLease.objects.create(space=space, **fields)
        except IntegrityError:
            raise errors.DuplicateConnection() from None
    _log("app.connected", space=space.name, conn=connection_id, addr=remote_addr or "-")
    outcome = Outcome(request=None)
    # Requests still held by a connection that died without a goodbye go back to the queue now.
    for request_id in (
        InferenceRequest.objects.filter(space=space, status=Status.RUNNING)
        .exclude(connection_id=connection_id)
        .values_list("id", "connection_id")
    ):
        outcome.merge(requeue(request_id[0], request_id[1]))
    return _with_space_status(outcome, space.pk)


def renew_lease(space_id: int, connection_id: str) -> bool:
    now = _now()
    return bool(
        AppLease.objects.filter(
            space_id=space_id, connection_id=connection_id, released_at__isnull=True, expires_at__gt=now
        ).update(expires_at=now + LEASE_TTL)
    )


def release_lease(space_id: int, connection_id: str) -> Outcome:
    released = AppLease.objects.filter(space_id=space_id, connection_id=connection_id, released_at__isnull=True).update(
        released_at=_now()
    )
    outcome = Outcome()
    if released:
        _log("app.disconnected", space_id=space_id, conn=connection_id)
        _with_space_status(outcome, space_id)
    return outcome


# --- sweeps (idempotent, safe in every process) ---------------------------------------


def sweep(grace: timedelta = timedelta(seconds=2)) -> Outcome:
    """One pass: requeue requests of dead connections, time out overdue ones, fail abandoned queues."""
    outcome = Outcome()
    now = _now()
    live = live_leases().values_list("connection_id", flat=True)
    touched: set[int] = set()
    for request_id, connection_id, space_id in (
        InferenceRequest.objects.filter(status=Status.RUNNING)
        .exclude(connection_id__in=list(live))
        .values_list("id", "connection_id", "space_id")
    ):
        outcome.merge(requeue(request_id, connection_id))
        touched.add(space_id)
    for request_id in InferenceRequest.objects.filter(status=Status.RUNNING, deadline__lte=now - grace).values_list(
        "id", flat=True
    ):
        outcome.merge(time_out(request_id, grace))
    # Queued requests wait REQUEUE_WAIT for an app that went away to come back.
    for lease in AppLease.objects.filter(Q(released_at__isnull=False) | Q(expires_at__lte=now)):
        ended = lease.released_at or lease.expires_at
        if ended > now - REQUEUE_WAIT:
            continue
        for request_id in InferenceRequest.objects.filter(space_id=lease.space_id, status=Status.QUEUED).values_list(
            "id", flat=True
        ):
            ended_outcome = _end(
                request_id,
                "status = %s",
                [Status.QUEUED],
                Status.FAILED,
                "app_disconnected",
                "The space's app went away and did not come back in time.",
            )
            if ended_outcome.won:
                outcome.merge(ended_outcome)
                touched.add(lease.space_id)
    for space_id in touched:
        _with_space_status(outcome, space_id)
    return outcome
