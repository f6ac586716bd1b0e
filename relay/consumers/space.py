"""`/ws/spaces/<slug>/`: a space's live status, for everyone who may see its page.

Many people may watch one space (an open page each), so a process handles its watchers of a space
together: one of them, the first, is in the space's channel-layer group for all of them, and a
queue change reaches the process as one message, rendered once and written to every local watcher.
Events carry the status their sender computed; two senders (a submit, a faster claim on another
process) may publish in the other order than they committed, and an event may pass while the group's
member changes hands. So every event also asks for one re-read of the database, shared by the
process's watchers of the space and coalesced over SETTLE_SECONDS: the last word is the database's,
at one query per space and process however many watch it.
"""

import asyncio
import json
import logging
import weakref
from typing import Any

from relay import queue, sweeper
from relay.consumers.browser import JsonConsumer
from relay.db import db_call
from relay.models import space_group
from spaces.models import Space

log = logging.getLogger("relay.browser")

SETTLE_SECONDS = 0.5  # a stale or missed queue event is corrected at the latest this long after

# Per event loop (one in a hub process; tests run several): each space's local watchers, the first of
# them the group's member, and at most one pending re-read per space.
_watchers: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, list[SpaceConsumer]]]" = (
    weakref.WeakKeyDictionary()
)
_settling: dict[int, asyncio.Task[None]] = {}


def _local(space_id: int) -> list["SpaceConsumer"]:
    return _watchers.setdefault(asyncio.get_running_loop(), {}).setdefault(space_id, [])


@db_call
def _space_status(slug: str) -> tuple[int, dict[str, Any]] | None:
    space_id = Space.objects.active().filter(slug=slug).values_list("id", flat=True).first()
    if space_id is None:
        return None
    return space_id, queue.space_status(space_id)


async def _show_all(space_id: int, status: dict[str, Any]) -> None:
    """Write a status to every local watcher of the space that does not show it yet."""
    current = (bool(status["connected"]), int(status["queue_size"]))
    text = json.dumps({"type": "space", "connected": current[0], "queue_size": current[1]})
    for watcher in list(_local(space_id)):
        if watcher.last != current:
            watcher.last = current
            try:
                await watcher.send(text_data=text)
            except Exception:
                log.exception("could not update a watcher of space %s", space_id)


def _settle_soon(space_id: int) -> None:
    task = _settling.get(space_id)
    loop = asyncio.get_running_loop()
    if task is None or task.done() or task.get_loop() is not loop:
        _settling[space_id] = loop.create_task(_settle(space_id))


async def _settle(space_id: int) -> None:
    await asyncio.sleep(SETTLE_SECONDS)
    if _settling.get(space_id) is asyncio.current_task():
        del _settling[space_id]  # an event from here on asks for another re-read
    try:
        status = await db_call(queue.space_status)(space_id)
    except Exception:
        log.exception("could not re-read the status of space %s", space_id)
        return
    await _show_all(space_id, status)


class SpaceConsumer(JsonConsumer):
    """`{"type": "space", "connected", "queue_size"}` on connect and whenever either changes."""

    last: tuple[bool, int] | None = None

    async def connect(self) -> None:
        await self.accept()
        found = await _space_status(self.scope["url_route"]["kwargs"]["slug"])
        if found is None:
            await self.close(code=4404)
            return
        self.space_id, status = found
        self.group = space_group(self.space_id)
        watchers = _local(self.space_id)
        watchers.append(self)
        if watchers[0] is self:
            await self.channel_layer.group_add(self.group, self.channel_name)
        sweeper.ensure_running()
        current = (bool(status["connected"]), int(status["queue_size"]))
        self.last = current
        await self.send_json({"type": "space", "connected": current[0], "queue_size": current[1]})
        _settle_soon(self.space_id)  # an event sent between the read and the join is not lost

    async def space_status(self, event: dict[str, Any]) -> None:
        """A queue or presence change (only the group's member receives it): show it to every watcher."""
        await _show_all(self.space_id, event)
        _settle_soon(self.space_id)

    async def disconnect(self, code: int) -> None:
        if not hasattr(self, "group"):
            return
        watchers = _local(self.space_id)
        was_member = bool(watchers) and watchers[0] is self
        if self in watchers:
            watchers.remove(self)
        if not was_member:
            return
        await self.channel_layer.group_discard(self.group, self.channel_name)
        if watchers:
            # Hand the membership on; what passes meanwhile is caught by the re-read.
            await self.channel_layer.group_add(self.group, watchers[0].channel_name)
            _settle_soon(self.space_id)
