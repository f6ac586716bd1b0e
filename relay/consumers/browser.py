"""Browser sockets: a space's live status, and one request's stream."""

import asyncio
import json
import logging
from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer

from relay import queue, sweeper
from relay.db import db_call
from relay.events import request_state
from relay.models import InferenceRequest, Status, request_group, space_group
from spaces.models import Space

log = logging.getLogger("relay.browser")

RESYNC_SECONDS = 10.0  # a lost event is noticed at the latest this long after


class JsonConsumer(AsyncWebsocketConsumer):
    async def send_json(self, frame: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(frame, ensure_ascii=False))

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Browsers only listen; a ping gets a pong, anything else is ignored."""
        if text_data and len(text_data) < 100 and '"ping"' in text_data:
            await self.send_json({"type": "pong"})


@db_call
def _space_status(slug: str) -> tuple[int, dict[str, Any]] | None:
    space_id = Space.objects.active().filter(slug=slug).values_list("id", flat=True).first()
    if space_id is None:
        return None
    return space_id, queue.space_status(space_id)


class SpaceConsumer(JsonConsumer):
    """`/ws/spaces/<slug>/`: `{"type": "space", "connected", "queue_size"}` on connect and on every change."""

    async def connect(self) -> None:
        await self.accept()
        found = await _space_status(self.scope["url_route"]["kwargs"]["slug"])
        if found is None:
            await self.close(code=4404)
            return
        self.space_id, status = found
        self.group = space_group(self.space_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        sweeper.ensure_running()
        self.last: tuple[bool, int] | None = None
        await self.space_status(status)

    async def space_status(self, event: dict[str, Any]) -> None:
        current = (bool(event["connected"]), int(event["queue_size"]))
        if current != self.last:
            self.last = current
            await self.send_json({"type": "space", "connected": current[0], "queue_size": current[1]})

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)


@db_call
def _load(request_id: str, user: Any) -> InferenceRequest | None:
    """The request if this user may follow it (its submitter, or staff); None otherwise."""
    if not getattr(user, "is_authenticated", False):
        return None
    qs = InferenceRequest.objects.select_related("space").filter(pk=request_id)
    if not user.is_staff:
        qs = qs.filter(user=user)
    return qs.first()


@db_call
def _snapshot(request_id: str) -> dict[str, Any]:
    req = InferenceRequest.objects.select_related("space").get(pk=request_id)
    return request_state(req, queue.position(req))


@db_call
def _seq_of(request_id: str) -> int:
    return InferenceRequest.objects.filter(pk=request_id).values_list("seq", flat=True).first() or 0


class RequestConsumer(JsonConsumer):
    """`/ws/requests/<id>/`: the state snapshot, then every change in order; close 1000 after the final one."""

    async def connect(self) -> None:
        await self.accept()
        self.request_id = str(self.scope["url_route"]["kwargs"]["request_id"])
        req = await _load(self.request_id, self.scope.get("user"))
        if req is None:
            await self.close(code=4403)
            return
        sweeper.ensure_running()  # a process with only browsers still times out and requeues
        self.groups_joined = [request_group(self.request_id), space_group(req.space_id)]
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        self.seq = -1
        self.status = ""
        self.position: int | None = None
        self.done = False
        await self._send_state()
        if not self.done:
            self.resync = asyncio.create_task(self._resync_loop())

    async def _send_state(self) -> None:
        state = await _snapshot(self.request_id)
        if self.done:
            return  # the final frame came (and the socket closed) while this read the database
        self.seq = state["seq"]
        self.status = state["status"]
        self.position = state["position"]
        await self.send_json({"type": "state", "request": state})
        if self.status not in (Status.QUEUED, Status.RUNNING):
            await self._finish()

    async def request_event(self, event: dict[str, Any]) -> None:
        if self.done or event["seq"] <= self.seq:
            return  # the snapshot already covered it
        if event["seq"] != self.seq + 1:
            await self._send_state()  # an event was lost on the way: start again from the database
            return
        self.seq = event["seq"]
        for frame in event["frames"]:
            if frame["type"] == "status":
                self.status = frame["status"]
                self.position = frame.get("position")
            await self.send_json(frame)
        if event["final"]:
            await self._finish()

    async def space_status(self, event: dict[str, Any]) -> None:
        """Queue moved: tell a queued request its new position."""
        if self.done or self.status != Status.QUEUED:
            return
        ids = event.get("queued_ids") or []
        if self.request_id in ids:
            position = ids.index(self.request_id) + 1
        elif len(ids) < event.get("queue_size", 0):
            return  # beyond the list carried in the event; the resync loop catches up
        else:
            return  # no longer queued: its own event says what it became
        if position != self.position:
            self.position = position
            await self.send_json({"type": "status", "status": "queued", "position": position})

    async def _resync_loop(self) -> None:
        while not self.done:
            await asyncio.sleep(RESYNC_SECONDS)
            try:
                # The final frame may arrive while this waits on the database: then there is nothing to add.
                if await _seq_of(self.request_id) > self.seq and not self.done:
                    await self._send_state()
            except Exception:
                log.exception("resync failed for %s", self.request_id)

    async def _finish(self) -> None:
        self.done = True
        await self.close(code=1000)

    async def disconnect(self, code: int) -> None:
        self.done = True
        task = getattr(self, "resync", None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)


class NotFoundConsumer(AsyncWebsocketConsumer):
    """Any other WebSocket path: accepted only to be closed with 4404 (not an error in the logs)."""

    async def connect(self) -> None:
        await self.accept()
        await self.close(code=4404)
