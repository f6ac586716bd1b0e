"""Delays between reconnection attempts."""

import random
from collections.abc import Callable


class Backoff:
    """Exponential backoff with jitter: about base, 2*base, 4*base ... up to `cap` seconds.

    Each delay is drawn from [d/2, d] so that many apps cut off by one hub restart do
    not all come back in the same instant.
    """

    def __init__(self, base: float = 0.5, cap: float = 30.0, rand: Callable[[], float] = random.random) -> None:
        if base <= 0 or cap < base:
            raise ValueError("Backoff needs 0 < base <= cap.")
        self.base = base
        self.cap = cap
        self.failures = 0
        self._rand = rand

    def next(self) -> float:
        """The delay before the next attempt; each call counts one more failure."""
        ceiling = min(self.cap, self.base * 2 ** min(self.failures, 30))
        self.failures += 1
        return ceiling * (0.5 + 0.5 * self._rand())

    def reset(self) -> None:
        """Start again from `base` (after a connection that registered)."""
        self.failures = 0
