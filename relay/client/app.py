"""A remote app: one WebSocket connection to the hub that serves one space, kept up across failures."""

import asyncio
import contextlib
import json
import logging
import random
import threading
import time
from collections.abc import Callable, MutableMapping
from typing import Any, TypeVar

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from relay.client.backoff import Backoff
from relay.client.errors import CredentialsRefused, RequestCancelled
from relay.client.job import Job, is_async
from relay.client.log import FRAMES_LOGGER, LOGGER
from relay.client.request import Request
from relay.client.runner import run_apps
from relay.client.wire import dumps, summary, ws_url

VERSION = "1.0.0"
CLIENT_INFO = {"name": "spacehub-client", "version": VERSION}

REGISTER_REPLY_TIMEOUT = 15.0
MAX_INCOMING_BYTES = 16 * 1024 * 1024
# After this app's own connection dropped (a hub restart, a network cut) the hub may keep its
# lease until it lapses, up to 30 s: a duplicate_connection refusal in that window is most likely
# our own ghost, so it is retried sooner than one from a genuinely different app.
GHOST_WINDOW = 45.0
GHOST_RETRY = 3.0

H = TypeVar("H", bound=Callable[..., Any])

log = logging.getLogger(LOGGER)
frames_log = logging.getLogger(FRAMES_LOGGER)


class _SpaceLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        return f"[{self.extra['space']}] {msg}", kwargs  # type: ignore[index]


class _Retry(Exception):
    """The connection ended; connect again after `delay` seconds (None: the next backoff delay)."""

    def __init__(self, message: str, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class App:
    """A remote app serving one space: connects, registers, answers requests with its handler.

    The handler is an `async def` taking a `Request`, or a plain `def` taking a
    `SyncRequest` (it runs in a thread). It returns a str (the text), a dict with
    `text` and/or `files`, or None; an exception becomes an `error` answer.

    `grace` is how long a stopping app lets the request in flight finish; `max_backoff`
    caps the delay between reconnection attempts; `duplicate_retry` is how often it
    tries again while another app holds the space.
    """

    def __init__(
        self,
        hub: str,
        space: str,
        token: str,
        handler: Callable[..., Any] | None = None,
        *,
        grace: float = 30.0,
        max_backoff: float = 30.0,
        duplicate_retry: float = 12.0,
    ) -> None:
        if not space:
            raise ValueError("An App needs the space's name.")
        if not token:
            raise ValueError(f'An App needs the app token of space "{space}".')
        self.hub = hub
        self.url = ws_url(hub)
        self.space = space
        self.grace = grace
        self.duplicate_retry = duplicate_retry
        self.connection_id: str | None = None
        self.features: dict[str, bool] = {}
        self.log = _SpaceLog(log, {"space": space})
        self._token = token
        self._handler = handler
        self._backoff = Backoff(base=min(0.5, max_backoff), cap=max_backoff)
        self._job: Job | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = 0
        # Made again by each serve(): an asyncio.Event belongs to the loop that first waits on it.
        self._stopping = asyncio.Event()
        self._now = asyncio.Event()
        self._stop_deadline = 0.0
        self._lost_at: float | None = None
        self._conn_task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<App space={self.space!r} hub={self.hub!r}>"

    def handler(self, func: H) -> H:
        """Decorator: the function that answers this space's requests."""
        self._handler = func
        return func

    def run(self) -> None:
        """Serve until SIGINT or SIGTERM, then let the request in flight finish (up to `grace` s).

        Raises `CredentialsRefused` if the hub refuses the space or its token.
        """
        run_apps([self])

    def stop(self, now: bool = False) -> None:
        """Stop taking requests, let the one in flight finish (or give it up at once with `now`), close.

        Safe to call from any thread.
        """
        loop = self._loop
        if loop is None:
            return
        if threading.get_ident() != self._thread:
            if not loop.is_closed():
                loop.call_soon_threadsafe(self.stop, now)
            return
        if not self._stopping.is_set():
            self._stop_deadline = time.monotonic() + self.grace
            self._stopping.set()
        if now:
            self._now.set()
        if self.connection_id is None and self._conn_task is not None:
            self._conn_task.cancel()  # not registered: nothing to finish

    async def serve(self) -> None:
        """Serve in the running event loop until `stop()`; reconnect by itself after failures."""
        if self._handler is None:
            raise ValueError(f'No handler for space "{self.space}": decorate a function with @app.handler.')
        self._stopping, self._now = asyncio.Event(), asyncio.Event()
        self._loop, self._thread = asyncio.get_running_loop(), threading.get_ident()
        kind = "async def" if is_async(self._handler) else "plain def, in a thread"
        self.log.info("serving at %s (handler %s: %s)", self.hub, getattr(self._handler, "__name__", "?"), kind)
        while not self._stopping.is_set():
            self._conn_task = asyncio.create_task(self._connection())
            try:
                await self._conn_task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if (current is not None and current.cancelling()) or not self._stopping.is_set():
                    raise
            except _Retry as exc:
                await self._pause(str(exc), exc.delay)
            except (OSError, TimeoutError, WebSocketException) as exc:
                await self._pause(f"cannot reach the hub ({_describe(exc)})", None)
            except CredentialsRefused:
                raise
            except Exception:
                # A bug (here or a surprising frame) must not end a service that runs for months.
                self.log.exception("unexpected error on the connection to the hub")
                await self._pause("reconnecting after an unexpected error", None)
            finally:
                self._conn_task = None
        self.log.info("stopped")

    # --- one connection ------------------------------------------------------------------

    async def _pause(self, why: str, delay: float | None) -> None:
        if self._stopping.is_set():
            return
        delay = self._backoff.next() if delay is None else delay
        self.log.warning("%s; retrying in %.1f s", why, delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), delay)

    async def _connection(self) -> None:
        async with connect(
            self.url,
            open_timeout=10,
            ping_interval=20,
            ping_timeout=20,
            close_timeout=5,
            max_size=MAX_INCOMING_BYTES,
            user_agent_header=f"spacehub-client/{VERSION}",
        ) as ws:
            await self._register(ws)
            try:
                await self._session(ws)
            finally:
                self._lost_at = time.monotonic()
                self.connection_id = None

    async def _register(self, ws: ClientConnection) -> None:
        await self._send(ws, {"type": "register", "space": self.space, "token": self._token, "client": CLIENT_INFO})
        try:
            reply = await asyncio.wait_for(self._recv(ws), REGISTER_REPLY_TIMEOUT)
        except ConnectionClosed as exc:
            raise self._refusal(exc.rcvd.code if exc.rcvd else None, None) from None
        except TimeoutError:
            raise _Retry("the hub did not answer the registration") from None
        if reply.get("type") == "error":
            # The hub closes right after a refusal, and its close code says which kind.
            close_code = None
            try:
                await asyncio.wait_for(ws.recv(), 5)
            except ConnectionClosed as exc:
                close_code = exc.rcvd.code if exc.rcvd else None
            except TimeoutError:
                pass
            raise self._refusal(close_code, reply)
        if reply.get("type") != "registered":
            raise _Retry(f"unexpected answer to the registration: {summary(reply)}")
        space = reply.get("space") if isinstance(reply.get("space"), dict) else {}
        self.connection_id = str(reply.get("connection_id") or "?")
        self.features = {k: bool(v) for k, v in (space.get("features") or {}).items()}
        self._backoff.reset()
        enabled = ", ".join(k for k, on in self.features.items() if on) or "none"
        self.log.info("connected: connection %s, features %s", self.connection_id, enabled)

    def _refusal(self, close_code: int | None, error: dict[str, Any] | None) -> Exception:
        code = (error or {}).get("code")
        message = str((error or {}).get("message") or "")
        if close_code == 4401 or code == "invalid_credentials":
            exc = CredentialsRefused(self.space, message)
            self.log.error("%s", exc)
            return exc
        if close_code == 4409 or code == "duplicate_connection":
            if self._lost_at is not None and time.monotonic() - self._lost_at < GHOST_WINDOW:
                why = "the hub still counts this app's previous connection (it lapses within 30 s)"
                return _Retry(why, GHOST_RETRY * random.uniform(0.8, 1.2))
            why = f"another app holds this space ({message or 'duplicate_connection'})"
            return _Retry(why, self.duplicate_retry * random.uniform(0.9, 1.1))
        if close_code is None:
            return _Retry("lost the connection to the hub")
        detail = f": {code}: {message}" if code else ""
        return _Retry(f"the hub closed the connection (code {close_code}{detail})")

    async def _session(self, ws: ClientConnection) -> None:
        reader = asyncio.create_task(self._read(ws))
        stopper = asyncio.create_task(self._stopping.wait())
        try:
            await asyncio.wait({reader, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if not reader.done():
                with contextlib.suppress(ConnectionClosed):
                    # Tell the hub to send nothing new, so no request is handed over only to be requeued.
                    await self._send(ws, {"type": "stopping"})
                await self._drain(reader)
                await ws.close(1000, "app stopping")
                self.log.info("disconnected")
                return
            reader.result()  # raises why the connection ended
        finally:
            stopper.cancel()
            reader.cancel()
            await asyncio.gather(reader, stopper, return_exceptions=True)
            if self._job is not None and self._job.ws is ws:
                self._abandon(self._job, "disconnected")

    async def _drain(self, reader: "asyncio.Task[None]") -> None:
        """Stopping: let the request in flight finish until the grace period ends (or `stop(now=True)`)."""
        job = self._job
        if job is None or job.task is None:
            return
        remaining = max(0.0, self._stop_deadline - time.monotonic())
        if not self._now.is_set():
            self.log.info("stopping: letting request %s finish (up to %.3g s)", job.request.id, remaining)
        now = asyncio.create_task(self._now.wait())
        await asyncio.wait({job.task, reader, now}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
        now.cancel()
        if not job.task.done():
            self._abandon(job, "shutdown")
            await asyncio.wait({job.task}, timeout=2)

    async def _read(self, ws: ClientConnection) -> None:
        last_error: dict[str, Any] | None = None
        while True:
            try:
                frame = await self._recv(ws)
            except ConnectionClosed as exc:
                raise self._refusal(exc.rcvd.code if exc.rcvd else None, last_error) from None
            kind = frame.get("type")
            if kind == "request":
                self._on_request(ws, frame)
            elif kind == "cancel":
                self._on_cancel(frame)
            elif kind == "error":
                last_error = frame
                if frame.get("code") not in ("invalid_credentials", "duplicate_connection"):
                    self.log.warning("the hub says: %s (%s)", frame.get("message"), frame.get("code"))
            elif kind != "pong":
                self.log.debug("ignored a frame of type %r", kind)

    async def _recv(self, ws: ClientConnection) -> dict[str, Any]:
        """The next frame that is a JSON object (anything else is logged and skipped)."""
        while True:
            raw = await ws.recv()
            try:
                frame = json.loads(raw)
            except ValueError:
                frame = None
            if isinstance(frame, dict):
                frames_log.debug("[%s] <- %s", self.space, summary(frame))
                return frame
            self.log.warning("ignored a frame that is not a JSON object: %.200r", raw)

    async def _send(self, ws: ClientConnection, frame: dict[str, Any]) -> None:
        frames_log.debug("[%s] -> %s", self.space, summary(frame))
        await ws.send(dumps(frame))

    # --- requests ----------------------------------------------------------------------------

    def _on_request(self, ws: ClientConnection, frame: dict[str, Any]) -> None:
        if not isinstance(frame.get("id"), str):
            self.log.warning("ignored a request without an id: %s", summary(frame))
            return
        if self._stopping.is_set():
            self.log.info("request %s left to the hub's queue: this app is stopping", frame["id"])
            return
        if self._job is not None:
            self._abandon(self._job, "superseded")

        async def send(out: dict[str, Any]) -> None:
            if request.cancelled:
                raise RequestCancelled(request.id, request.cancel_reason or "cancelled")
            try:
                await self._send(ws, out)
            except ConnectionClosed:
                request._abandon("disconnected")
                raise RequestCancelled(request.id, "disconnected") from None

        request = Request(frame, space=self.space, hub=self.hub, send=send)
        assert self._handler is not None
        job = Job(request, ws, self._handler, self.log)
        assert job.task is not None
        job.task.add_done_callback(lambda _task: self._forget(job))
        self._job = job

    def _on_cancel(self, frame: dict[str, Any]) -> None:
        job = self._job
        if job is None or job.request.id != frame.get("id"):
            self.log.debug("cancel for a request not in flight: %s", frame.get("id"))
            return
        self._abandon(job, str(frame.get("reason") or "cancelled"))

    def _abandon(self, job: Job, reason: str) -> None:
        job.abandon(reason)
        self._forget(job)

    def _forget(self, job: Job) -> None:
        if self._job is job:
            self._job = None


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
