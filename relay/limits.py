"""Per-connection flood protection."""

import contextlib
import time
from typing import Any

from django.conf import settings
from django.core.cache import cache


class TokenBucket:
    """Allows `rate` events a second on average, bursts up to `burst`."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = time.monotonic()

    @classmethod
    def for_apps(cls) -> "TokenBucket":
        return cls(
            rate=float(getattr(settings, "RELAY_APP_FRAMES_PER_SECOND", 500)),
            burst=float(getattr(settings, "RELAY_APP_FRAME_BURST", 2000)),
        )

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


_redis_client: Any = None


def _redis() -> Any:
    """One client per process on the shared pool (Django's cache builds a client per call)."""
    global _redis_client
    if _redis_client is None:
        from redis import Redis

        from spacehub.cache import SharedConnectionPool

        _redis_client = Redis(connection_pool=SharedConnectionPool.from_url(settings.REDIS_URL))
    return _redis_client


def _window_key(key: str, window: int) -> str:
    prefix = settings.CACHES["default"].get("KEY_PREFIX", "")
    return f"{prefix}:ratelimit:{key}:{int(time.time() // window)}"


def _count(bucket: str, window: int) -> int:
    """Add one to a window's counter (shared by every process) and return the new count."""
    if getattr(settings, "REDIS_URL", ""):
        pipe = _redis().pipeline()
        pipe.incr(bucket)
        pipe.expire(bucket, window * 2)
        return int(pipe.execute()[0])
    cache.add(bucket, 0, timeout=window * 2)
    try:
        return int(cache.incr(bucket))
    except ValueError:  # expired between add and incr
        cache.add(bucket, 1, timeout=window * 2)
        return 1


def hit(key: str, limit: int, window: int = 60) -> bool:
    """Count one event against `key` (shared by every process); False past the limit."""
    return _count(_window_key(key, window), window) <= limit


def reserve(key: str, limit: int, window: int = 60) -> str | None:
    """Count one event first, atomically (concurrent callers cannot all pass a check made before counting).

    Returns the window's bucket, for `release` if the event does not happen after all, or None when the
    limit is used up (then nothing stays counted).
    """
    bucket = _window_key(key, window)
    if _count(bucket, window) > limit:
        release(bucket)
        return None
    return bucket


def release(bucket: str) -> None:
    """Take back one event counted by `reserve` (in the window it was counted in)."""
    if getattr(settings, "REDIS_URL", ""):
        _redis().decr(bucket)
        return
    with contextlib.suppress(ValueError):  # the counter expired meanwhile: nothing left to take back
        cache.decr(bucket)


def exceeded(key: str, limit: int, window: int = 60) -> bool:
    """Whether `key` already used up its events in this window (counts nothing)."""
    bucket = _window_key(key, window)
    if getattr(settings, "REDIS_URL", ""):
        return int(_redis().get(bucket) or 0) >= limit
    return int(cache.get(bucket) or 0) >= limit


def registration_failures_per_minute() -> int:
    return int(getattr(settings, "RELAY_REGISTER_FAILURES_PER_MINUTE", 20))


def submits_per_minute() -> int:
    return int(getattr(settings, "RELAY_SUBMITS_PER_MINUTE", 30))
