"""Per-connection flood protection."""

import time

from django.conf import settings


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
