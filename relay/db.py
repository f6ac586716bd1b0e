"""Running the relay's database work from async code.

Channels' `database_sync_to_async` runs every call of a process on one thread by default; with a
connection pool (PostgreSQL), the relay's calls are self-contained and may run side by side on
worker threads. SQLite keeps the one thread: it has one writer anyway.
"""

from collections.abc import Callable
from typing import Any

from channels.db import DatabaseSyncToAsync
from django.db import connections


def db_call(func: Callable[..., Any]) -> Any:
    return DatabaseSyncToAsync(func, thread_sensitive=connections["default"].vendor == "sqlite")
