from __future__ import annotations

import pytest
from tenacity import AsyncRetrying, RetryCallState, RetryError, stop_after_attempt

from spotify_tokener.core.fetcher import backoff_wait
from spotify_tokener.domain.backoff import Backoff
from spotify_tokener.domain.errors import RateLimited, UpstreamError

RULES = Backoff(base_s=1.0, retries=3, retry_after_max_s=60, cooldown_max_s=300)


def test_delays_double_from_the_base() -> None:
    assert [RULES.delay_s(n, None) for n in (1, 2, 3)] == [1.0, 2.0, 4.0]


def test_retry_after_lengthens_but_never_shortens() -> None:
    assert RULES.delay_s(1, 10) == 10
    assert RULES.delay_s(3, 0.5) == 4


def test_retry_after_is_capped() -> None:
    assert RULES.delay_s(1, 86_400) == 60
    assert RULES.honoured_s(86_400) == 60
    assert RULES.honoured_s(12.5) == 12.5


def test_a_thousand_failures_in_a_row_still_give_a_wait() -> None:
    assert RULES.cooldown_s(5_000, None) == RULES.cooldown_max_s  # 2.0 ** 4999 would overflow


def test_the_cooldown_doubles_on_from_where_the_retries_stopped_up_to_its_cap() -> None:
    assert [RULES.cooldown_s(n, None) for n in (1, 2, 3)] == [8.0, 16.0, 32.0]
    assert RULES.cooldown_s(1, 50) == 50
    assert RULES.cooldown_s(9, None) == 300


async def test_tenacity_sees_the_same_schedule() -> None:
    waits: list[float] = []

    async def no_sleep(seconds: float) -> None:
        waits.append(seconds)

    errors = [UpstreamError("a"), RateLimited("b", retry_after=7), UpstreamError("c"), UpstreamError("d")]

    async def failing(number: list[int]) -> None:
        number[0] += 1
        raise errors[number[0] - 1]

    retrying = AsyncRetrying(stop=stop_after_attempt(4), wait=backoff_wait(RULES), sleep=no_sleep)
    with pytest.raises(RetryError):
        await retrying(failing, [0])
    assert waits == [1.0, 7.0, 4.0]


def test_the_worst_fetch_is_every_attempt_timing_out_after_the_longest_waits() -> None:
    assert RULES.worst_fetch_s(20) == 4 * 20 + 3 * 60
    assert Backoff(1, 3, 0, 300).worst_fetch_s(20) == 4 * 20 + 1 + 2 + 4
    assert Backoff(1, 0, 60, 300).worst_fetch_s(20) == 20


def test_jitter_only_stretches_and_the_worst_case_counts_it() -> None:
    jittery = Backoff(base_s=1.0, retries=3, retry_after_max_s=60, cooldown_max_s=300, jitter=0.5)
    assert jittery.delay_s(2, None, draw=0.0) == 2.0
    assert jittery.delay_s(2, None, draw=1.0) == 3.0
    assert jittery.delay_s(1, 10, draw=0.5) == 12.5
    assert jittery.worst_fetch_s(10) == 4 * 10 + 3 * 60 * 1.5


def test_fetches_that_failed_together_retry_apart() -> None:
    jittery = Backoff(base_s=1.0, retries=3, retry_after_max_s=60, cooldown_max_s=300, jitter=0.5)
    draws = iter([0.0, 0.5, 1.0])
    wait = backoff_wait(jittery, draw=lambda: next(draws))
    state = RetryCallState(AsyncRetrying(), fn=None, args=(), kwargs={})
    state.attempt_number = 1
    assert [wait(state) for _ in range(3)] == [1.0, 1.25, 1.5]
