"""The queue's hot statements, written in SQL: one round trip each, a fraction of the ORM's CPU.

A request passes enqueue, claim and finish once each; through the ORM those cost about 2 ms of CPU
apiece (query building, compiling, model instances), ten times the statements' own cost. Only
`relay.queue` calls these; it still owns every state change and its events.

The statements run unchanged on PostgreSQL and on SQLite (3.35 and newer, for RETURNING). Values go
through the model fields' own database preparation, so they compare and store as the ORM's do.
"""

import uuid
from datetime import UTC, datetime
from typing import Any

from django.db import connection
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from relay.models import AppLease, InferenceRequest, Status
from spaces.models import Space

_quote = connection.ops.quote_name
REQUESTS = _quote(InferenceRequest._meta.db_table)
LEASES = _quote(AppLease._meta.db_table)
SPACES = _quote(Space._meta.db_table)

_field = InferenceRequest._meta.get_field


def db_id(value: Any) -> Any:
    """A request id as the database holds it (a uuid on PostgreSQL, 32 hex digits on SQLite)."""
    return _field("id").get_db_prep_value(value, connection)


def when(value: datetime | None) -> Any:
    return _field("created_at").get_db_prep_value(value, connection)


def to_uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def to_datetime(value: Any) -> datetime | None:
    """A datetime read by a raw query (SQLite returns text, in UTC)."""
    parsed = value if value is None or isinstance(value, datetime) else parse_datetime(str(value))
    if parsed is not None and timezone.is_naive(parsed):
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def to_json(field: str, value: Any) -> Any:
    return _field(field).from_db_value(value, None, connection) if isinstance(value, str) else value


def _one(sql: str, params: list[Any]) -> tuple[Any, ...] | None:
    """Run a statement; its first row, if it returns rows."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone() if cursor.description else None


# --- enqueue ------------------------------------------------------------------------------


def lock_space(space_id: int) -> None:
    """Serialise submissions to one space (PostgreSQL) so the queue limits hold under races."""
    if connection.features.has_select_for_update:
        _one(f"SELECT id FROM {SPACES} WHERE id = %s FOR UPDATE", [space_id])


def enqueue_checks(space_id: int, user_id: int, now: datetime) -> tuple[str | None, int, int]:
    """The live app's channel (None: no app), the space's queued requests, and this user's."""
    row = _one(
        f"SELECT (SELECT channel_name FROM {LEASES} WHERE space_id = %s AND released_at IS NULL AND expires_at > %s),"
        f" (SELECT COUNT(*) FROM {REQUESTS} WHERE space_id = %s AND status = %s),"
        f" (SELECT COUNT(*) FROM {REQUESTS} WHERE space_id = %s AND status = %s AND user_id = %s)",
        [space_id, when(now), space_id, Status.QUEUED, space_id, Status.QUEUED, user_id],
    )
    assert row is not None
    return row[0], int(row[1]), int(row[2])


def insert(req: InferenceRequest) -> None:
    """INSERT one new row, every column prepared by its field as `Model.save` would."""
    fields = InferenceRequest._meta.concrete_fields
    values = [f.get_db_prep_save(f.pre_save(req, add=True), connection) for f in fields]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    marks = ", ".join(["%s"] * len(fields))
    _one(f"INSERT INTO {REQUESTS} ({columns}) VALUES ({marks})", values)


# --- claim --------------------------------------------------------------------------------


def claim(space_id: int, connection_id: str, now: datetime, deadline: datetime) -> tuple[Any, ...] | None:
    """Mark the head of the space's queue running for this connection, if it holds the space's lease.

    Returns (id, attempt, seq, inputs, user_id, created_at, queued after it), or None when nothing
    was claimed. The status test in the outer WHERE makes a racing claim or cancel of the same row
    lose cleanly. The count excludes the claimed row by id, so it means the same whether the
    database evaluates it before the update (PostgreSQL) or after (SQLite).
    """
    return _one(
        f"UPDATE {REQUESTS} SET status = %s, connection_id = %s, attempt = attempt + 1, started_at = %s,"
        " deadline = %s, seq = seq + 1, progress = NULL, message = NULL, text = ''"
        f" WHERE id = (SELECT id FROM {REQUESTS} WHERE space_id = %s AND status = %s"
        "              ORDER BY created_at, id LIMIT 1)"
        " AND status = %s"
        f" AND EXISTS (SELECT 1 FROM {LEASES} WHERE space_id = %s AND connection_id = %s"
        "              AND released_at IS NULL AND expires_at > %s)"
        " RETURNING id, attempt, seq, inputs, user_id, created_at,"
        f" (SELECT COUNT(*) FROM {REQUESTS} AS others WHERE others.space_id = {REQUESTS}.space_id"
        f"  AND others.status = %s AND others.id <> {REQUESTS}.id)",
        [
            Status.RUNNING,
            connection_id,
            when(now),
            when(deadline),
            space_id,
            Status.QUEUED,
            Status.QUEUED,
            space_id,
            connection_id,
            when(now),
            Status.QUEUED,
        ],
    )


def claim_blocked(space_id: int, connection_id: str, now: datetime) -> tuple[bool, bool]:
    """After a claim that took nothing: (anything queued?, does this connection still hold the space?)."""
    row = _one(
        f"SELECT EXISTS (SELECT 1 FROM {REQUESTS} WHERE space_id = %s AND status = %s),"
        f" EXISTS (SELECT 1 FROM {LEASES} WHERE space_id = %s AND connection_id = %s"
        "         AND released_at IS NULL AND expires_at > %s)",
        [space_id, Status.QUEUED, space_id, connection_id, when(now)],
    )
    assert row is not None
    return bool(row[0]), bool(row[1])


def queued_ids(space_id: int, limit: int) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id FROM {REQUESTS} WHERE space_id = %s AND status = %s ORDER BY created_at, id LIMIT %s",
            [space_id, Status.QUEUED, limit],
        )
        return [str(to_uuid(row[0])) for row in cursor.fetchall()]


# --- the end ------------------------------------------------------------------------------

END_COLUMNS = (
    "space_id",
    "user_id",
    "connection_id",
    "attempt",
    "seq",
    "outputs",
    "text",
    "progress",
    "message",
    "created_at",
    "started_at",
)


def end(request_id: Any, where: str, params: list[Any], changes: dict[str, Any]) -> dict[str, Any] | None:
    """One conditional UPDATE to a final state; the row's fields after it, or None if `where` matched nothing.

    `where` is a fixed SQL condition of the caller's (never user input); `changes` maps columns to
    values already prepared for the database. The request must still be queued or running.
    """
    sets = ", ".join(f"{column} = %s" for column in changes)
    row = _one(
        f"UPDATE {REQUESTS} SET {sets}, seq = seq + 1 WHERE id = %s AND status IN (%s, %s) AND ({where})"
        f" RETURNING {', '.join(END_COLUMNS)}, (SELECT name FROM {SPACES} WHERE {SPACES}.id = {REQUESTS}.space_id)",
        [*changes.values(), db_id(request_id), Status.QUEUED, Status.RUNNING, *params],
    )
    if row is None:
        return None
    values = dict(zip((*END_COLUMNS, "space_name"), row, strict=True))
    values["outputs"] = to_json("outputs", values["outputs"])
    values["created_at"] = to_datetime(values["created_at"])
    values["started_at"] = to_datetime(values["started_at"])
    return values
