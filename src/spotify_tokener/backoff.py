"""How long to wait between attempts: doubling from a base, stretched to honour ``Retry-After``.

The delay rule is a pure function; :class:`RetryAfterWait` plugs it into tenacity.
"""

from __future__ import annotations

from tenacity import RetryCallState
from tenacity.wait import wait_base

from spotify_tokener.errors import TokenError


def backoff_delay(failures: int, base: float, retry_after: float | None, retry_after_max: float) -> float:
    """Seconds to wait after the ``failures``-th consecutive failure (1-based): base, 2x, 4x...

    A server-sent ``Retry-After`` lengthens the wait, never shortens it, and is capped so one
    hostile header cannot park the service for hours.
    """
    delay = base * 2.0 ** (max(failures, 1) - 1)
    if retry_after is not None:
        delay = max(delay, min(retry_after, retry_after_max))
    return delay


class RetryAfterWait(wait_base):
    def __init__(self, base: float, retry_after_max: float) -> None:
        self._base = base
        self._retry_after_max = retry_after_max

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        retry_after = error.retry_after if isinstance(error, TokenError) else None
        return backoff_delay(retry_state.attempt_number, self._base, retry_after, self._retry_after_max)


def worst_fetch_s(retries: int, fetch_timeout: float, base: float, retry_after_max: float) -> float:
    """The longest a fetch and its retries can take: every attempt timing out, every wait at its longest."""
    waits = sum(backoff_delay(n, base, retry_after_max, retry_after_max) for n in range(1, retries + 1))
    return (retries + 1) * fetch_timeout + waits
