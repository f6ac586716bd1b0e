"""Reconnection delays: exponential, capped, jittered, reset after a good connection."""

import pytest

from relay.client import Backoff


def test_it_doubles_up_to_the_cap() -> None:
    backoff = Backoff(base=0.5, cap=30.0, rand=lambda: 1.0)  # jitter at its top: the plain ceiling

    delays = [backoff.next() for _ in range(10)]

    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0]


def test_its_jitter_keeps_each_delay_between_half_and_all_of_the_ceiling() -> None:
    low = Backoff(base=1.0, cap=30.0, rand=lambda: 0.0)
    assert [low.next() for _ in range(4)] == [0.5, 1.0, 2.0, 4.0]
    real = Backoff(base=1.0, cap=8.0)
    for ceiling in (1, 2, 4, 8, 8, 8):
        assert ceiling / 2 <= real.next() <= ceiling


def test_it_starts_over_after_a_reset() -> None:
    backoff = Backoff(base=0.5, cap=30.0, rand=lambda: 1.0)
    for _ in range(5):
        backoff.next()

    backoff.reset()

    assert backoff.next() == 0.5


def test_it_survives_a_hub_down_for_hours() -> None:
    backoff = Backoff(base=0.5, cap=30.0, rand=lambda: 1.0)
    assert max(backoff.next() for _ in range(5000)) == 30.0


def test_it_refuses_nonsense_bounds() -> None:
    with pytest.raises(ValueError):
        Backoff(base=0, cap=1)
    with pytest.raises(ValueError):
        Backoff(base=5, cap=1)
