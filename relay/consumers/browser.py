"""Browser sockets: the JSON base, one request's stream, and the 4404 for unknown paths (the space status: space.py)."""

import asyncio
import json
import logging
from types import SimpleNamespace
from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer
from django.contrib import auth
from django.contrib.sessions.backends.base import SessionBase

from relay import queue, sweeper
from relay.db import DispatchWithoutHop, db_call
from relay.events import request_state
from relay.models import InferenceRequest, Status, request_group, space_group

log = logging.getLogger("relay.browser")

RESYNC_SECONDS = 10.0  # a lost event is noticed at the latest this long after


class JsonConsumer(DispatchWithoutHop, AsyncWebsocketConsumer):
    """A browser socket: JSON frames out; its database work goes through `db_call` only."""

    async def send_json(self, frame: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(frame, ensure_ascii=False))

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Browsers only listen; a ping gets a pong, anything else is ignored."""
        if text_data and len(text_data) < 100 and '"ping"' in text_data:
            await self.send_json({"type": "pong"})


@db_call
def _open(request_id: str, session: SessionBase) -> tuple[dict[str, Any], int] | None:
    """The request's state and space id if the session's user may follow it (its submitter, or staff).

    None for anyone else and for unknown ids alike. The whole connect in one hop: the session, its
    user, the request with its space, and the queue ahead of it when queued.
    """
    # Django's own check (it needs only `.session`): the auth hash, fallback keys, an inactive user.
    user = auth.get_user(SimpleNamespace(session=session))
    if not user.is_authenticated:
        return None
    qs = InferenceRequest.objects.select_related("space").filter(pk=request_id)
    if not user.is_staff:
        qs = qs.filter(user=user)
    try:
        req = qs.get()
    except InferenceRequest.DoesNotExist:
        return None
    return request_state(req, queue.position(req)), req.space_id


@db_call
def _snapshot(request_id: str) -> dict[str, Any]:
    req = InferenceRequest.objects.select_related("space").get(pk=request_id)
    return request_state(req, queue.position(req))


@db_call
def _progress(request_id: str) -> tuple[int, int | None]:
    """The request's `seq`, and its position while queued (None otherwise)."""
    req = InferenceRequest.objects.only("seq", "status", "space_id", "created_at").filter(pk=request_id).first()
    if req is None:
        return 0, None
    return req.seq, queue.position(req)


class RequestConsumer(JsonConsumer):
    """`/ws/requests/<id>/`: the state snapshot, then every change in order; close 1000 after the final one."""

    async def connect(self) -> None:
        """Refuse with 4403 unless the session's user may follow the request; else send its state."""
        await self.accept()
        self.request_id = str(self.scope["url_route"]["kwargs"]["request_id"])
        self.seq = -1
        self.status = ""
        self.position: int | None = None
        self.done = False
        self.queue_group: str | None = None  # the space's group, joined only while the request is queued
        self.in_queue_group = False
        self.queue_moves = 0  # space events seen: a position read across one of them may be stale
        session = self.scope.get("session")
        if session is None or session.session_key is None:
            await self._refuse()  # no session, no user: nothing to look up
            return
        self.group = request_group(self.request_id)
        # Joined before the snapshot is read: an event sent meanwhile is delivered after it, and
        # dropped by its seq if the snapshot covered it.
        await self.channel_layer.group_add(self.group, self.channel_name)
        opened = await _open(self.request_id, session)
        if opened is None:
            await self._refuse()
            return
        state, space_id = opened
        self.queue_group = space_group(space_id)
        sweeper.ensure_running()  # a process with only browsers still times out and requeues
        await self._show(state)
        if not self.done:
            self.resync = asyncio.create_task(self._resync_loop())

    async def _refuse(self) -> None:
        # The same answer for anonymous users, other users' requests and unknown ids: nothing leaks.
        self.done = True
        await self.close(code=4403)

    async def _send_state(self) -> None:
        await self._show(await _snapshot(self.request_id))

    async def _show(self, state: dict[str, Any]) -> None:
        if self.done:
            return  # the final frame came (and the socket closed) while this read the database
        self.seq = state["seq"]
        self.status = state["status"]
        self.position = state["position"]
        # The space is known only from the snapshot, so its group is joined after it: a queue move in
        # between is repaired by the resync loop (the request's own events cannot be missed).
        await self._watch_queue()
        await self.send_json({"type": "state", "request": state})
        if self.status not in (Status.QUEUED, Status.RUNNING):
            await self._finish()

    async def _watch_queue(self) -> None:
        """Be in the space's group exactly while the request is queued: only then do queue moves concern it."""
        queued = self.status == Status.QUEUED and not self.done
        if queued == self.in_queue_group or self.queue_group is None:
            return
        self.in_queue_group = queued  # before the await: a second caller meanwhile sees the new state
        if queued:
            await self.channel_layer.group_add(self.queue_group, self.channel_name)
            if self.done:  # disconnected while joining: disconnect's discard may have come first
                await self.channel_layer.group_discard(self.queue_group, self.channel_name)
        else:
            await self.channel_layer.group_discard(self.queue_group, self.channel_name)

    async def request_event(self, event: dict[str, Any]) -> None:
        """One change of the request: forward its frames, unless the snapshot covered it; resync on a gap."""
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
                await self._watch_queue()  # running: leave the queue's group; requeued: join it again
            await self.send_json(frame)
        if event["final"]:
            await self._finish()

    async def space_status(self, event: dict[str, Any]) -> None:
        """Queue moved: tell a queued request its new position."""
        self.queue_moves += 1
        if self.done or self.status != Status.QUEUED:
            return
        ids = event.get("queued_ids") or []
        if self.request_id in ids:
            position = ids.index(self.request_id) + 1
        elif len(ids) < event.get("queue_size", 0):
            return  # beyond the list carried in the event; the resync loop catches up
        else:
            return  # no longer queued: its own event says what it became
        await self._move_to(position)

    async def _move_to(self, position: int) -> None:
        if position != self.position:
            self.position = position
            await self.send_json({"type": "status", "status": "queued", "position": position})

    async def _resync_loop(self) -> None:
        while not self.done:
            await asyncio.sleep(RESYNC_SECONDS)
            try:
                moves = self.queue_moves
                seq, position = await _progress(self.request_id)
                # The final frame may arrive while this waits on the database: then there is nothing to add.
                if self.done:
                    continue
                if seq > self.seq:
                    await self._send_state()
                elif position is not None and self.status == Status.QUEUED and moves == self.queue_moves:
                    # A queue move missed (sent before the space's group was joined, dropped by the
                    # layer, or beyond the ids an event carries); one seen during the read is newer.
                    await self._move_to(position)
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
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)
        if getattr(self, "in_queue_group", False) and self.queue_group is not None:
            await self.channel_layer.group_discard(self.queue_group, self.channel_name)


class NotFoundConsumer(DispatchWithoutHop, AsyncWebsocketConsumer):
    """Any other WebSocket path: accepted only to be closed with 4404 (not an error in the logs)."""

    async def connect(self) -> None:
        await self.accept()
        await self.close(code=4404)
