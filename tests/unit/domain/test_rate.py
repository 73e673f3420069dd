from __future__ import annotations

import pytest

from spotify_tokener.domain.rate import RateLimit


def test_a_burst_passes_then_the_steady_rate() -> None:
    limit = RateLimit(per_minute=6, burst=3, now_ms=0)
    assert [limit.take(0) for _ in range(3)] == [None, None, None]
    assert limit.take(0) == pytest.approx(10)
    assert limit.take(5_000) == pytest.approx(5)
    assert limit.take(10_000) is None
    assert limit.take(10_000) == pytest.approx(10)


def test_an_idle_limit_refills_no_further_than_its_burst() -> None:
    limit = RateLimit(per_minute=60, burst=2, now_ms=0)
    assert limit.take(3_600_000) is None
    assert limit.take(3_600_000) is None
    assert limit.take(3_600_000) == pytest.approx(1)


def test_a_clock_stepped_back_refills_nothing_and_locks_nobody_out() -> None:
    limit = RateLimit(per_minute=60, burst=1, now_ms=10_000)
    assert limit.take(10_000) is None
    assert limit.take(5_000) == pytest.approx(1)
    assert limit.take(6_000) is None
