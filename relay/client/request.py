"""One request from the hub, as a handler sees it: inputs, progress, partial text, input files."""

import asyncio
import contextlib
import math
import shutil
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from relay.client.errors import ClientError, RequestCancelled
from relay.client.wire import file_url

T = TypeVar("T")

# Streamed text is sent at most this often (the rest waits a moment and joins the next frame): a
# model emitting thousands of tokens a second would otherwise meet the hub's frame rate limit.
PARTIAL_INTERVAL = 0.02
DOWNLOAD_TIMEOUT = 60.0
USER_AGENT = "spacehub-client"

Send = Callable[[dict[str, Any]], Awaitable[None]]


def in_thread(func: Callable[..., T], *args: Any) -> "asyncio.Future[T]":
    """Run `func` in a daemon thread; await its result.

    Not the loop's default executor: at exit asyncio waits for those threads, and a model
    call that outlives the grace period must not keep the process alive.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(ok: bool, value: Any) -> None:
        if not future.done():  # the awaiting task may have been cancelled meanwhile
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    def run() -> None:
        try:
            ok, value = True, func(*args)
        except BaseException as exc:
            ok, value = False, exc
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits for this any more
            loop.call_soon_threadsafe(settle, ok, value)

    threading.Thread(target=run, name=f"spacehub-{getattr(func, '__name__', 'worker')}", daemon=True).start()
    return future


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _safe_name(name: str, fallback: str) -> str:
    base = Path(name.replace("\\", "/")).name.strip().lstrip(".")
    return base or fallback


def _free_path(folder: Path, name: str) -> Path:
    path = folder / name
    n = 1
    while path.exists():
        path = folder / f"{Path(name).stem}-{n}{Path(name).suffix}"
        n += 1
    return path


def fetch(url: str, dest: BinaryIO | None = None, timeout: float = DOWNLOAD_TIMEOUT, name: str = "") -> bytes:
    """GET an input file with the standard library: its bytes, or stream them into `dest` (returns b"")."""
    # The scheme is checked (http/https only) by wire.file_url before this is reached.
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
            if dest is None:
                return bytes(resp.read())
            shutil.copyfileobj(resp, dest, 1 << 20)
            return b""
    except urllib.error.HTTPError as exc:
        # The signed URL is a credential of sorts: name the file, not the URL.
        raise ClientError(f'Downloading input file "{name or "?"}" failed: HTTP {exc.code} {exc.reason}.') from None


class Request:
    """One request, as an `async def` handler receives it.

    `inputs` is the request's `inputs` object: `prompt` is a str, `audio` and `video`
    are file entries ({"name", "content_type", "size", "url"}), `files` is a list of
    them; only the space's enabled features appear.
    """

    def __init__(self, frame: dict[str, Any], *, space: str, hub: str, send: Send) -> None:
        self.id: str = str(frame["id"])
        self.attempt: int = int(frame.get("attempt") or 1)
        self.deadline: datetime | None = _parse_time(frame.get("deadline"))
        inputs = frame.get("inputs")
        self.inputs: dict[str, Any] = inputs if isinstance(inputs, dict) else {}
        self.space = space
        self.cancel_reason: str | None = None
        self.finished = False
        self._hub = hub
        self._send = send
        self._cancelled = asyncio.Event()
        self._cancelled_flag = threading.Event()  # readable from a sync handler's thread
        self._lock = asyncio.Lock()
        self._pending = ""
        self._last_partial = 0.0
        self._flusher: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return f"<Request {self.id} space={self.space!r} attempt={self.attempt}>"

    @property
    def prompt(self) -> str | None:
        """The prompt, when the space has the prompt feature and the person wrote one."""
        prompt = self.inputs.get("prompt")
        return prompt if isinstance(prompt, str) else None

    @property
    def cancelled(self) -> bool:
        """True once the hub no longer wants this request (see `cancel_reason`)."""
        return self._cancelled_flag.is_set()

    async def wait_cancelled(self) -> str:
        """Wait until the hub cancels the request; returns the reason ("cancelled", "timeout" ...)."""
        await self._cancelled.wait()
        return self.cancel_reason or "cancelled"

    async def progress(self, value: float | None, message: str | None = None) -> None:
        """Report progress: a fraction in [0, 1] (clamped) or None, with an optional message."""
        if value is not None:
            value = float(value)
            value = None if math.isnan(value) else min(1.0, max(0.0, value))
        frame: dict[str, Any] = {"type": "progress", "id": self.id, "progress": value}
        if message is not None:
            frame["message"] = str(message)
        await self._emit(frame)

    async def partial(self, text: str) -> None:
        """Stream a piece of the answer; it is appended to what the person sees so far."""
        self._check()
        if not text:
            return
        self._pending += str(text)
        wait = self._last_partial + PARTIAL_INTERVAL - time.monotonic()
        if wait <= 0:
            await self._emit(None)
        elif self._flusher is None:
            self._flusher = asyncio.get_running_loop().call_later(wait, self._flush_later)

    async def read(self, field: str, index: int = 0) -> bytes:
        """The bytes of an input file: `read("audio")`, or `read("files", 2)` for the third of `files`."""
        return await in_thread(self.read_sync, field, index)

    async def download(self, field: str, dest_dir: str | Path | None = None, index: int = 0) -> Path:
        """Save an input file (streamed, for large files) into `dest_dir` and return its path.

        Without `dest_dir` the file goes to a new temporary folder, which the caller removes.
        """
        return await in_thread(self.download_sync, field, dest_dir, index)

    def file(self, field: str, index: int = 0) -> dict[str, Any]:
        """The entry of an input file ({"name", "content_type", "size", "url"})."""
        entry = self.inputs.get(field)
        if isinstance(entry, list):
            if not 0 <= index < len(entry):
                raise ClientError(f'Input "{field}" has {len(entry)} files: there is no index {index}.')
            entry = entry[index]
        if not isinstance(entry, dict) or not entry.get("url"):
            raise ClientError(f'The request has no input file "{field}".')
        return entry

    # --- shared with SyncRequest and the app -----------------------------------------------

    def _file_url(self, field: str, index: int) -> str:
        self._check()
        return file_url(self._hub, str(self.file(field, index)["url"]))

    def read_sync(self, field: str, index: int = 0) -> bytes:
        url = self._file_url(field, index)
        return fetch(url, name=str(self.file(field, index).get("name") or ""))

    def download_sync(self, field: str, dest_dir: str | Path | None = None, index: int = 0) -> Path:
        entry = self.file(field, index)
        url = self._file_url(field, index)
        folder = Path(dest_dir) if dest_dir is not None else Path(tempfile.mkdtemp(prefix="spacehub-"))
        folder.mkdir(parents=True, exist_ok=True)
        path = _free_path(folder, _safe_name(str(entry.get("name") or ""), f"{field}-{index}"))
        try:
            with open(path, "wb") as out:
                fetch(url, out, name=path.name)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path

    def _check(self) -> None:
        if self.cancelled:
            raise RequestCancelled(self.id, self.cancel_reason or "cancelled")
        if self.finished:
            raise ClientError(f"Request {self.id} has already been answered.")

    def _flush_later(self) -> None:
        self._flusher = None
        task = asyncio.get_running_loop().create_task(self._quiet_flush())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _quiet_flush(self) -> None:
        try:
            await self._emit(None)
        except Exception:  # cancelled or disconnected: the handler learns it on its next call
            return

    async def _emit(self, frame: dict[str, Any] | None) -> None:
        """Send `frame` after any partial text still held back (None sends just that text)."""
        async with self._lock:
            if self.finished and frame is None:
                return
            self._check()
            if self._flusher is not None:
                self._flusher.cancel()
                self._flusher = None
            if self._pending:
                text, self._pending = self._pending, ""
                self._last_partial = time.monotonic()
                await self._send({"type": "partial", "id": self.id, "text": text})
            if frame is not None:
                await self._send(frame)

    async def _finish(self, frame: dict[str, Any]) -> None:
        """Send the final `result` or `error` frame; nothing is sent about the request after it."""
        await self._emit(frame)
        self.finished = True

    def _abandon(self, reason: str) -> None:
        """The hub cancelled it, or its connection is gone: never send anything about it again."""
        if self.cancel_reason is None:
            self.cancel_reason = reason
        self._cancelled_flag.set()
        self._cancelled.set()
        if self._flusher is not None:
            self._flusher.cancel()
            self._flusher = None


class SyncRequest:
    """The same request for a plain `def` handler, which runs in a thread: the helpers block.

    Once the hub cancelled the request, `progress`, `partial`, `read` and `download` raise
    `RequestCancelled`, so a handler that reports as it goes stops by itself; a long step
    can also check `cancelled`. Whatever the handler returns after that is ignored.
    """

    def __init__(self, request: Request, loop: asyncio.AbstractEventLoop) -> None:
        self._request = request
        self._loop = loop

    def __repr__(self) -> str:
        return repr(self._request).replace("<Request", "<SyncRequest", 1)

    @property
    def id(self) -> str:
        return self._request.id

    @property
    def attempt(self) -> int:
        return self._request.attempt

    @property
    def deadline(self) -> datetime | None:
        return self._request.deadline

    @property
    def inputs(self) -> dict[str, Any]:
        return self._request.inputs

    @property
    def space(self) -> str:
        return self._request.space

    @property
    def prompt(self) -> str | None:
        return self._request.prompt

    @property
    def cancelled(self) -> bool:
        return self._request.cancelled

    @property
    def cancel_reason(self) -> str | None:
        return self._request.cancel_reason

    def wait_cancelled(self, timeout: float | None = None) -> bool:
        """Block until the hub cancels the request (True) or `timeout` seconds pass (False)."""
        return self._request._cancelled_flag.wait(timeout)

    def progress(self, value: float | None, message: str | None = None) -> None:
        """Report progress (see `Request.progress`); returns once the frame is sent."""
        self._call(self._request.progress(value, message))

    def partial(self, text: str) -> None:
        """Stream a piece of the answer (see `Request.partial`)."""
        self._call(self._request.partial(text))

    def read(self, field: str, index: int = 0) -> bytes:
        """The bytes of an input file (see `Request.read`)."""
        return self._request.read_sync(field, index)

    def download(self, field: str, dest_dir: str | Path | None = None, index: int = 0) -> Path:
        """Save an input file into `dest_dir` and return its path (see `Request.download`)."""
        return self._request.download_sync(field, dest_dir, index)

    def file(self, field: str, index: int = 0) -> dict[str, Any]:
        """The entry of an input file ({"name", "content_type", "size", "url"})."""
        return self._request.file(field, index)

    def _call(self, coro: Coroutine[Any, Any, None]) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            coro.close()
            raise RuntimeError("SyncRequest blocks: in an async def handler, await the Request's methods instead.")
        if self._request.cancelled:
            coro.close()
            self._request._check()
        asyncio.run_coroutine_threadsafe(coro, self._loop).result()
