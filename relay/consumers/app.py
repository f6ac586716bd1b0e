"""`/ws/apps/`: a remote app registers for one space and answers its requests one at a time."""

import asyncio
import collections
import contextlib
import json
import logging
import secrets
import time
from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer

from relay import files, frames, limits, queue, shutdown, sweeper
from relay.db import DispatchWithoutHop, db_call
from relay.errors import (
    BadMessage,
    DuplicateConnection,
    InvalidCredentials,
    RateLimited,
    RegisterTimeout,
    RelayError,
    UnknownRequest,
)
from relay.events import Outcome, publish
from relay.models import InferenceRequest, RequestFile
from spaces.models import Space

log = logging.getLogger("relay.app")

REGISTER_TIMEOUT = 10.0
HEARTBEAT_SECONDS = 5.0
STREAM_FLUSH_SECONDS = 0.03  # coalesce partial/progress frames: at most one DB write per 30 ms


@db_call
def _authenticate(name: str, token: str, addr: str) -> Space:
    """The space, if the token is its own; failures are rate-limited per address, on every process."""
    key, limit = f"register-fail:{addr}", limits.registration_failures_per_minute()
    if limits.exceeded(key, limit):
        raise RateLimited("Too many failed registrations from this address: wait a minute.")
    space = Space.objects.filter(name=name, is_active=True).first()
    if space is None or not space.check_token(token):
        limits.hit(key, limit)
        raise InvalidCredentials()
    return space


@db_call
def _claim(space: Space, connection_id: str, base_url: str) -> tuple[Outcome, dict[str, Any] | None]:
    outcome = queue.claim_next(space, connection_id)
    if not outcome.won:
        return outcome, None
    req = outcome.request
    assert req is not None
    frame = {
        "type": "request",
        "id": str(req.id),
        "attempt": req.attempt,
        "deadline": req.deadline.isoformat().replace("+00:00", "Z") if req.deadline else None,
        "inputs": files.request_inputs(req, base_url),
    }
    return outcome, frame


@db_call
def _finish(request_id: str, connection_id: str, text: str | None, result_files: list[frames.ResultFile]) -> Outcome:
    records = files.save_outputs(request_id, result_files)
    outputs: dict[str, Any] = {"files": files.output_entries(records)}
    if text is not None:
        outputs["text"] = text
    outcome = queue.finish(request_id, connection_id, outputs)
    if not outcome.won:
        files.discard(records)
    elif records:
        RequestFile.objects.bulk_create(records)
    return outcome


class InFlight:
    """The one request this connection is working on, and its not-yet-written stream."""

    def __init__(self, request_id: str, seq: int, deadline: float) -> None:
        self.id = request_id
        self.seq = seq
        self.deadline = deadline
        self.text = ""
        self.progress: tuple[float | None, str | None] | None = None
        self.frames: list[dict[str, Any]] = []
        self.last_flush = 0.0
        self.flush_task: asyncio.Task[None] | None = None
        self.flush_lock = asyncio.Lock()


class AppConsumer(DispatchWithoutHop, AsyncWebsocketConsumer):
    space: Space | None = None
    inflight: InFlight | None = None

    async def connect(self) -> None:
        self.connection_id = secrets.token_hex(12)
        self.tasks: list[asyncio.Task[None]] = []
        self.lock = asyncio.Lock()
        self.bucket = limits.TokenBucket.for_apps()
        self.closing = False
        self.draining = False
        self.stopped_ids: collections.deque[str] = collections.deque(maxlen=64)
        await self.accept()
        sweeper.ensure_running()
        self.tasks.append(asyncio.create_task(self._register_deadline()))

    # --- frames from the app ------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.closing:
            return
        try:
            if not self.bucket.take():
                raise RateLimited()
            frame = frames.parse(text_data, bytes_data)
            if self.space is None:
                await self._register(frames.register(frame))
            else:
                await self._dispatch_frame(frame)
        except RelayError as exc:
            await self._refuse(exc, close=self.space is None or exc.code == "rate_limited")

    async def _dispatch_frame(self, frame: dict[str, Any]) -> None:
        kind = frame["type"]
        if kind == "ping":
            await self._send({"type": "pong"})
            return
        if kind == "stopping":
            self.draining = True  # the app is shutting down: it finishes what it has, takes nothing new
            return
        handler = {"progress": self._progress, "partial": self._partial, "result": self._result, "error": self._error}
        if kind not in handler:
            raise BadMessage(f'Unknown frame type "{kind[:40]}".')
        request_id = frames.request_id(frame)
        if request_id in self.stopped_ids:
            return  # PROTOCOL: after a cancel the hub ignores anything more about that id
        if self.inflight is None or self.inflight.id != request_id:
            raise UnknownRequest()
        await handler[kind](frame)

    async def _register(self, reg: frames.Register) -> None:
        space = await _authenticate(reg.space, reg.token, self._remote_addr())
        outcome = await db_call(queue.acquire_lease)(
            space, self.connection_id, self.channel_name, reg.client, self._remote_addr()
        )
        self.space = space
        for task in self.tasks:
            task.cancel()
        await self._send(
            {
                "type": "registered",
                "connection_id": self.connection_id,
                "space": {
                    "name": space.name,
                    "slug": space.slug,
                    "timeout_seconds": space.timeout_seconds,
                    "features": space.features,
                },
            }
        )
        await publish(outcome)
        self.tasks = [asyncio.create_task(self._heartbeat())]
        await self._next()

    async def _progress(self, frame: dict[str, Any]) -> None:
        value, message = frames.progress(frame)
        out = {"type": "progress", "progress": value, "message": message}
        await self._stream(lambda f: setattr(f, "progress", (value, message)), out)

    async def _partial(self, frame: dict[str, Any]) -> None:
        text = frames.partial(frame)

        def add(f: InFlight) -> None:
            f.text += text

        await self._stream(add, {"type": "partial", "text": text})

    async def _result(self, frame: dict[str, Any]) -> None:
        text, result_files = frames.result(frame)
        inflight = await self._take_inflight()
        if inflight is None:
            return
        await self._flush(inflight)
        outcome = await _finish(inflight.id, self.connection_id, text, result_files)
        await publish(outcome)
        await self._next()

    async def _error(self, frame: dict[str, Any]) -> None:
        message = frames.error_message(frame)
        inflight = await self._take_inflight()
        if inflight is None:
            return
        await self._flush(inflight)
        outcome = await db_call(queue.fail)(inflight.id, self.connection_id, message)
        await publish(outcome)
        await self._next()

    # --- streaming: coalesced writes, then events -----------------------------------------

    async def _stream(self, apply: Any, out: dict[str, Any]) -> None:
        inflight = self.inflight
        assert inflight is not None
        apply(inflight)
        inflight.frames.append(out)
        wait = inflight.last_flush + STREAM_FLUSH_SECONDS - time.monotonic()
        if wait <= 0:
            await self._flush(inflight)
        elif inflight.flush_task is None:
            inflight.flush_task = asyncio.create_task(self._flush_later(inflight, wait))

    async def _flush_later(self, inflight: InFlight, wait: float) -> None:
        await asyncio.sleep(wait)
        inflight.flush_task = None
        await self._flush(inflight)

    async def _flush(self, inflight: InFlight) -> None:
        async with inflight.flush_lock:
            if not inflight.frames:
                return
            text, progress, out = inflight.text, inflight.progress, _merge(inflight.frames)
            inflight.text, inflight.progress, inflight.frames = "", None, []
            inflight.last_flush = time.monotonic()
            outcome = await db_call(queue.record_stream)(
                inflight.id, self.connection_id, inflight.seq, text, progress, out
            )
            if outcome.won:
                inflight.seq += 1
                await publish(outcome)

    # --- dispatch -------------------------------------------------------------------------

    async def _next(self) -> None:
        """Send the head of the queue if this connection is idle."""
        async with self.lock:
            if self.inflight is not None or self.space is None or self.closing or self.draining:
                return
            outcome, frame = await _claim(self.space, self.connection_id, self._base_url())
            if frame is None or outcome.request is None:
                return
            timeout = self.space.timeout_seconds
            self.inflight = InFlight(frame["id"], outcome.request.seq, time.monotonic() + timeout)
            self.tasks.append(asyncio.create_task(self._deadline(frame["id"], timeout)))
            await self._send(frame)
        await publish(outcome)

    async def _take_inflight(self) -> InFlight | None:
        async with self.lock:
            inflight, self.inflight = self.inflight, None
        if inflight and inflight.flush_task:
            inflight.flush_task.cancel()  # still sleeping: the caller flushes what it held
        return inflight

    async def _drop(self, request_id: str, reason: str) -> None:
        """The request ended elsewhere (cancel, timeout): tell the app, forget it, take the next."""
        if self.inflight is None or self.inflight.id != request_id:
            return
        await self._take_inflight()
        self.stopped_ids.append(request_id)
        await self._send({"type": "cancel", "id": request_id, "reason": reason})
        await self._next()

    async def _deadline(self, request_id: str, timeout: float) -> None:
        await asyncio.sleep(timeout)
        if self.inflight is None or self.inflight.id != request_id:
            return
        outcome = await db_call(queue.time_out)(request_id)
        outcome.direct_events.clear()  # this consumer tells its app itself
        await publish(outcome)
        await self._drop(request_id, "timeout")

    async def _heartbeat(self) -> None:
        """Renew the lease; notice what lost events did not say (an ended request, queued work)."""
        assert self.space is not None
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            try:
                space = await db_call(_still_valid)(self.space.pk, self.space.token_hash)
                if space is None:
                    await self.app_revoked({})
                    return
                self.space = space  # staff's changes (timeout, features) apply from the next request on
                if not await db_call(queue.renew_lease)(self.space.pk, self.connection_id):
                    log.warning("lease lost space=%s conn=%s", self.space.name, self.connection_id)
                    await self._refuse(DuplicateConnection("This connection's lease lapsed."), close=True)
                    return
                inflight = self.inflight
                if inflight is not None:
                    status = await db_call(_status_of)(inflight.id)
                    if status != "running":
                        await self._drop(inflight.id, "timeout" if status == "timed_out" else "cancelled")
                else:
                    await self._next()
            except Exception:
                log.exception("heartbeat failed space=%s conn=%s", self.space.name, self.connection_id)

    async def _register_deadline(self) -> None:
        await asyncio.sleep(REGISTER_TIMEOUT)
        if self.space is None:
            await self._refuse(RegisterTimeout(), close=True)

    # --- events from the hub ----------------------------------------------------------------

    async def app_wake(self, event: dict[str, Any]) -> None:
        await self._next()

    async def app_ended(self, event: dict[str, Any]) -> None:
        await self._drop(event["id"], event["reason"])

    async def app_revoked(self, event: dict[str, Any]) -> None:
        await self._refuse(InvalidCredentials("The space's app token was rotated or the space deactivated."), True)

    # --- the end ------------------------------------------------------------------------------

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        shutdown.enrol()
        try:
            await super().__call__(scope, receive, send)
        except BaseException:
            # On SIGTERM daphne cancels every consumer without a disconnect, and a consumer that raised
            # (the database or Redis gone) gets none either: stop the heartbeat, release the lease and
            # requeue the request in flight now, so the app can register again at once.
            if not getattr(self, "closing", True):
                with contextlib.suppress(Exception):
                    await asyncio.shield(self.disconnect(1011))
            raise

    async def disconnect(self, code: int) -> None:
        self.closing = True
        for task in self.tasks:
            task.cancel()
        if self.space is None:
            return
        inflight = await self._take_inflight()
        outcome = Outcome()
        if inflight is not None:
            outcome.merge(await db_call(queue.requeue)(inflight.id, self.connection_id))
        outcome.merge(await db_call(queue.release_lease)(self.space.pk, self.connection_id))
        await publish(outcome)

    async def _refuse(self, exc: RelayError, close: bool) -> None:
        await self._send({"type": "error", **exc.as_dict()})
        if close:
            self.closing = True
            await self.close(code=exc.close_code or 4400)

    async def _send(self, frame: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(frame, ensure_ascii=False))

    def _remote_addr(self) -> str:
        client = self.scope.get("client") or ["", 0]
        return str(client[0] or "")

    def _base_url(self) -> str:
        headers = dict(self.scope.get("headers") or [])
        host = headers.get(b"host", b"localhost").decode("latin1")
        # daphne puts no scheme in a WebSocket scope; behind TLS, nginx says so in X-Forwarded-Proto.
        # Trusting it only changes the links in this app's own request frames.
        secure = self.scope.get("scheme") in ("wss", "https") or headers.get(b"x-forwarded-proto") == b"https"
        return f"{'https' if secure else 'http'}://{host}"


def _still_valid(space_id: int, token_hash: str) -> Space | None:
    """The space as it is now, if still active with its token unchanged (a missed revoke event is caught here)."""
    return Space.objects.filter(pk=space_id, is_active=True, token_hash=token_hash).first()


def _status_of(request_id: str) -> str | None:
    return InferenceRequest.objects.filter(pk=request_id).values_list("status", flat=True).first()


def _merge(out: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Coalesce a burst: adjacent partials become one, only the last progress is kept."""
    merged: list[dict[str, Any]] = []
    last_progress = None
    for frame in out:
        if frame["type"] == "progress":
            last_progress = frame
        elif merged and merged[-1]["type"] == "partial":
            merged[-1] = {"type": "partial", "text": merged[-1]["text"] + frame["text"]}
        else:
            merged.append(frame)
    if last_progress is not None:
        merged.insert(0, last_progress)
    return merged
