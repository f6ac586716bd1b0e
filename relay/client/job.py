"""Running one request: the handler (async, or a plain def in a thread), its answer, its log line."""

import asyncio
import inspect
import logging
import time
from collections.abc import Callable
from typing import Any

from relay.client.errors import RequestCancelled, ResultTooLarge
from relay.client.request import Request, SyncRequest, in_thread
from relay.client.wire import check_size, dumps, encode_outputs, error_text

# How a request the hub gave up is told in the log, by the reason it was given up.
OUTCOMES = {
    "cancelled": "cancelled",
    "timeout": "timed out",
    "disconnected": "abandoned (connection lost; the hub requeues it)",
    "shutdown": "abandoned (app stopping; the hub requeues it)",
    "superseded": "abandoned (the hub sent another request)",
}


def is_async(func: Callable[..., Any]) -> bool:
    """An `async def` handler (or an object with an async __call__) runs in the loop; others in a thread."""
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(type(func).__call__)


class Job:
    """One request in flight on one connection, and the task running its handler."""

    def __init__(self, request: Request, ws: Any, handler: Callable[..., Any], log: logging.LoggerAdapter) -> None:  # type: ignore[type-arg]
        self.request = request
        self.ws = ws
        self.handler = handler
        self.log = log
        self.started = time.monotonic()
        self.task: asyncio.Task[None] | None = asyncio.create_task(self._run(), name=f"spacehub-{request.id}")

    def abandon(self, reason: str) -> None:
        """The hub gave the request up, or its connection is gone: stop the handler, send nothing more."""
        self.request._abandon(reason)
        if self.task is not None and not self.task.done():
            # A plain def cannot be stopped: only the wait for it ends, and its result is dropped.
            self.task.cancel()

    async def _call(self) -> Any:
        if is_async(self.handler):
            return await self.handler(self.request)
        result = await in_thread(self.handler, SyncRequest(self.request, asyncio.get_running_loop()))
        if inspect.isawaitable(result):  # a plain def that returned a coroutine (a lambda around async code)
            result = await result
        return result

    async def _run(self) -> None:
        request = self.request
        failure: Exception | None = None
        try:
            value = await self._call()
            if request.cancelled:  # a plain def that returned after the hub gave the request up
                raise RequestCancelled(request.id, request.cancel_reason or "cancelled")
            frame: dict[str, Any] = {"type": "result", "id": request.id, "outputs": encode_outputs(value)}
            check_size(frame, dumps(frame))
        except (asyncio.CancelledError, RequestCancelled):
            if not request.cancelled:
                raise
            self._log(OUTCOMES.get(request.cancel_reason or "", "cancelled"))
            return
        except Exception as exc:
            if request.cancelled:  # most likely a consequence of the cancel
                self._log(OUTCOMES.get(request.cancel_reason or "", "cancelled"))
                return
            failure = exc
            frame = {"type": "error", "id": request.id, "message": error_text(exc)}
        try:
            await request._finish(frame)
        except (asyncio.CancelledError, RequestCancelled):
            self._log(OUTCOMES.get(request.cancel_reason or "", "cancelled"))
            return
        if failure is None:
            self._log("succeeded")
        else:
            # A result the client could not encode is explained by its message; a model's crash needs its traceback.
            trace = not isinstance(failure, ResultTooLarge | TypeError)
            self._log("failed", f": {error_text(failure)}", failure if trace else None)

    def _log(self, outcome: str, detail: str = "", exc: BaseException | None = None) -> None:
        attempt = f" (attempt {self.request.attempt})" if self.request.attempt > 1 else ""
        self.log.log(
            logging.ERROR if exc is not None else logging.INFO,
            "request %s %s in %.2fs%s%s",
            self.request.id,
            outcome,
            time.monotonic() - self.started,
            attempt,
            detail,
            extra={"outcome": outcome.split(" ")[0]},
            exc_info=(type(exc), exc, exc.__traceback__) if exc is not None else None,
        )
