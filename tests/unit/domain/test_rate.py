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
