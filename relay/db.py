"""Running the relay's database work from async code.

Channels' `database_sync_to_async` runs every call of a process on one thread by default; with a
connection pool (PostgreSQL), the relay's calls are self-contained and may run side by side on
worker threads. SQLite keeps the one thread: it has one writer anyway.
"""

from collections.abc import Callable
from typing import Any

from channels.consumer import get_handler_name
from channels.db import DatabaseSyncToAsync
from django.db import connections


def db_call(func: Callable[..., Any]) -> Any:
    return DatabaseSyncToAsync(func, thread_sensitive=connections["default"].vendor == "sqlite")


class DispatchWithoutHop:
    """Consumer mixin: dispatch events without channels' per-event `aclose_old_connections()` hop.

    channels runs `close_old_connections` on the shared sync thread before every handler, one thread
    hop per event and consumer: a queue change fanned out to 1,000 watchers queued 1,000 hops on that
    one thread (about 300 ms). The relay's consumers touch the database only through `db_call`, which
    closes old connections on its own thread around every call, so the hop buys nothing here.
    """

    async def dispatch(self, message: dict[str, Any]) -> None:
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)
