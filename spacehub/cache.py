"""One Redis connection pool per process for the cache (it holds the shared rate-limit counters).

Django makes a cache object, and with it a connection pool, per thread; under ASGI every sync
view may run on a fresh thread, so each request would open a new Redis connection. Sharing the
pool (redis-py's pools are thread-safe) makes the rate-limit check a round trip, not a connect.
"""

import threading
from typing import Any

from redis import ConnectionPool


class SharedConnectionPool(ConnectionPool):
    _shared: dict[tuple[str, tuple[tuple[str, Any], ...]], ConnectionPool] = {}
    _lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> ConnectionPool:  # type: ignore[override]
        key = (url, tuple(sorted(kwargs.items())))
        with cls._lock:
            pool = cls._shared.get(key)
            if pool is None:
                pool = cls._shared[key] = super().from_url(url, **kwargs)
            return pool
