"""Event payloads on the channel layer, and the request state object, defined once.

The channel layer only wakes consumers and pushes events; the database is the
truth. Every event of a request carries the request's `seq` after the change,
so a consumer can drop what its snapshot already covered and notice a gap.
"""

import logging
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.urls import reverse

from relay.models import InferenceRequest, request_group, space_group

log = logging.getLogger("relay.events")

# Message types (handler names on the consumers: "request.event" -> request_event).
REQUEST_EVENT = "request.event"
SPACE_STATUS = "space.status"
APP_WAKE = "app.wake"
APP_ENDED = "app.ended"
APP_REVOKED = "app.revoked"

QUEUED_IDS_IN_STATUS = 200


def iso(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat().replace("+00:00", "Z")


def file_entry(request_id: Any, entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": entry["name"],
        "content_type": entry["content_type"],
        "size": entry["size"],
        "url": reverse("relay:result_file", args=[request_id, entry["file_id"]]),
    }


def public_outputs(req: InferenceRequest) -> dict[str, Any] | None:
    if req.outputs is None:
        return None
    outputs: dict[str, Any] = {}
    if "text" in req.outputs:
        outputs["text"] = req.outputs["text"]
    outputs["files"] = [file_entry(req.id, f) for f in req.outputs.get("files", [])]
    return outputs


def request_state(req: InferenceRequest, position: int | None = None) -> dict[str, Any]:
    """The request state object of PROTOCOL.md (HTTP and WebSocket alike), plus `seq` and `attempt`."""
    return {
        "id": str(req.id),
        "space": req.space.slug,
        "status": req.status,
        "position": position,
        "progress": req.progress,
        "message": req.message,
        "text": req.text,
        "outputs": public_outputs(req),
        "error": req.error,
        "created_at": iso(req.created_at),
        "started_at": iso(req.started_at),
        "finished_at": iso(req.finished_at),
        "attempt": req.attempt,
        "seq": req.seq,
    }


def final_frame(req: InferenceRequest) -> dict[str, Any]:
    if req.status == "succeeded":
        return {"type": "result", "outputs": public_outputs(req)}
    return {"type": "error", "error": req.error}


@dataclass
class Outcome:
    """What a queue change did: the row after it (None when the change lost) and what to announce."""

    request: InferenceRequest | None = None
    position: int | None = None  # set by enqueue: where the new request stands
    group_events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    direct_events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    @property
    def won(self) -> bool:
        return self.request is not None

    def to_request(self, req: InferenceRequest, frames: list[dict[str, Any]], final: bool = False) -> None:
        self.group_events.append(
            (request_group(req.id), {"type": REQUEST_EVENT, "seq": req.seq, "frames": frames, "final": final})
        )

    def to_space(self, space_id: int, status: dict[str, Any]) -> None:
        self.group_events.append((space_group(space_id), {"type": SPACE_STATUS, **status}))

    def to_app(self, channel_name: str, message: dict[str, Any]) -> None:
        self.direct_events.append((channel_name, message))

    def merge(self, other: "Outcome") -> "Outcome":
        self.group_events.extend(other.group_events)
        self.direct_events.extend(other.direct_events)
        return self


async def publish(outcome: Outcome) -> None:
    """Send an outcome's events. A lost event loses no data: consumers resync from the database."""
    layer = get_channel_layer()
    if layer is None:
        return
    for group, message in outcome.group_events:
        try:
            await layer.group_send(group, message)
        except Exception:
            log.exception("could not send %s to %s", message.get("type"), group)
    for channel, message in outcome.direct_events:
        try:
            await layer.send(channel, message)
        except Exception:
            log.exception("could not send %s to %s", message.get("type"), channel)


def publish_sync(outcome: Outcome) -> None:
    if outcome.group_events or outcome.direct_events:
        async_to_sync(publish)(outcome)
