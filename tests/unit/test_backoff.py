from __future__ import annotations

import pytest
from tenacity import AsyncRetrying, RetryError, stop_after_attempt

from spotify_tokener.backoff import RetryAfterWait, backoff_delay, worst_fetch_s
from spotify_tokener.errors import RateLimited, UpstreamError


def test_delays_double_from_the_base() -> None:
    assert [backoff_delay(n, 1.0, None, 60) for n in (1, 2, 3)] == [1.0, 2.0, 4.0]


def test_retry_after_lengthens_but_never_shortens() -> None:
    assert backoff_delay(1, 1.0, 10, 60) == 10
    assert backoff_delay(3, 1.0, 0.5, 60) == 4


def test_retry_after_is_capped() -> None:
    assert backoff_delay(1, 1.0, 86_400, 60) == 60


async def test_tenacity_sees_the_same_schedule() -> None:
    waits: list[float] = []
    wait = RetryAfterWait(base=1.0, retry_after_max=60)

    async def no_sleep(seconds: float) -> None:
        waits.append(seconds)

    errors = [UpstreamError("a"), RateLimited("b", retry_after=7), UpstreamError("c"), UpstreamError("d")]

    async def failing(number: list[int]) -> None:
        number[0] += 1
        raise errors[number[0] - 1]

    retrying = AsyncRetrying(stop=stop_after_attempt(4), wait=wait, sleep=no_sleep)
    with pytest.raises(RetryError):
        await retrying(failing, [0])
    assert waits == [1.0, 7.0, 4.0]


def test_the_worst_fetch_is_every_attempt_timing_out_after_the_longest_waits() -> None:
    assert worst_fetch_s(3, 20, 1, 60) == 4 * 20 + 3 * 60
    assert worst_fetch_s(3, 20, 1, 0) == 4 * 20 + 1 + 2 + 4
    assert worst_fetch_s(0, 20, 1, 60) == 20
