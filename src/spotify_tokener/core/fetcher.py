"""A fetch: attempts at the token source, retried with backoff, each one logged and reported.

An *attempt* is one call to the source; a *fetch* is up to 1 + retries of them, fewer once nobody waits.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from spotify_tokener.core.places import Places
from spotify_tokener.core.ports import OUTCOME_OK, FetchObserver, TokenSource
from spotify_tokener.domain.backoff import Backoff
from spotify_tokener.domain.clock import Clock, Sleep
from spotify_tokener.domain.errors import (
    COOKIE_REJECTED,
    CookieRejected,
    InternalError,
    Overloaded,
    TokenError,
    UpstreamError,
)
from spotify_tokener.domain.token import Kind, Token, kind_of

if TYPE_CHECKING:
    from spotify_tokener.core.service import CoreConfig

log = logging.getLogger(__name__)


def backoff_wait(
    backoff: Backoff, draw: Callable[[], float] = random.random
) -> Callable[[RetryCallState], float]:
    """The backoff's delays, as tenacity asks for them, with the jitter drawn here."""

    def wait(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome is not None else None
        retry_after = error.retry_after if isinstance(error, TokenError) else None
        return backoff.delay_s(state.attempt_number, retry_after, draw())

    return wait


class Fetcher:
    def __init__(
        self, source: TokenSource, config: CoreConfig, *, clock: Clock, sleep: Sleep, observer: FetchObserver
    ) -> None:
        self._source = source
        self._places = Places(config.max_contexts, config.queue_size, config.queue_timeout, sleep)
        self._backoff = config.backoff
        self._freshness = config.freshness
        self._clock = clock
        self._sleep = sleep
        self._observer = observer

    async def fetch(self, sp_dc: str | None = None, awaited: Callable[[], bool] = lambda: True) -> Token:
        """Retries are for someone: once ``awaited`` says all waiters left, it ends with its last failure."""
        retrying = AsyncRetrying(
            stop=lambda state: state.attempt_number > self._backoff.retries or not awaited(),
            wait=backoff_wait(self._backoff),
            retry=retry_if_exception(lambda error: isinstance(error, TokenError) and error.failure.retried),
            sleep=self._sleep,
            reraise=True,
        )
        last: TokenError | None = None
        async for attempt in retrying:
            with attempt:
                if last is not None and not awaited():  # everyone left during the wait before it
                    raise last
                try:
                    return await self._attempt(attempt.retry_state.attempt_number, sp_dc)
                except Overloaded as busy:  # a retry that found no place: the failure before it is the cause
                    raise last or busy from None
                except TokenError as error:
                    last = error
                    raise
        raise AssertionError("tenacity stops by raising")  # pragma: no cover

    async def _attempt(self, number: int, sp_dc: str | None) -> Token:
        """One attempt in its place, logged as one line. Unexpected errors become client-safe ones."""
        kind = kind_of(sp_dc)
        async with self._places.place(kind):
            attempt = f"token attempt {number}/{self._backoff.retries + 1}"
            started = time.perf_counter()
            try:
                token = self._checked(await self._source.attempt(sp_dc), kind)
            except TokenError as error:
                self._observer.attempt_ended(kind, error.outcome, time.perf_counter() - started, number)
                log.warning("%s failed: %s, %.0f ms: %s", attempt, kind, _ms_since(started), error)
                raise
            except Exception as error:
                # Only the type: a library's message could quote the cookie it was handed.
                self._observer.attempt_ended(
                    kind, InternalError.outcome, time.perf_counter() - started, number
                )
                log.error("%s crashed: %s: %s", attempt, kind, type(error).__name__)
                raise InternalError("unexpected error while fetching a token") from None
            self._observer.attempt_ended(kind, OUTCOME_OK, time.perf_counter() - started, number)
            remaining_s = token.remaining_ms(self._clock()) // 1000
            log.info("%s ok: %s, %.0f ms, expires in %d s", attempt, kind, _ms_since(started), remaining_s)
            return token

    def _checked(self, token: Token, wanted: Kind) -> Token:
        """Never an account token for an anonymous caller nor the reverse; never one stale on arrival
        (LavaSrc caches a token until its exact expiry, so seconds of life are as bad as none)."""
        if token.kind != wanted:
            if wanted == "account":
                raise CookieRejected(COOKIE_REJECTED)
            raise UpstreamError("Spotify returned an account token to an anonymous request")
        if not self._freshness.is_servable(token, self._clock()):
            raise UpstreamError("Spotify sent a token that is expired or about to expire")
        return token


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000
