"""Keeps a good token on hand: the cache, the retries, and the refresher that renews it early.

The service knows nothing about HTTP or browsers: it calls a :class:`Harvester` and answers the
HTTP layer's questions. That keeps every rule here testable with an in-memory harvester.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from functools import partial
from typing import Protocol

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt

from spotify_tokener.accounts import AccountSlots
from spotify_tokener.backoff import RetryAfterWait, backoff_delay
from spotify_tokener.clock import Clock, wall_clock_ms
from spotify_tokener.coordination import ANONYMOUS_KEY, Coordinator, Harvest, LocalCoordinator
from spotify_tokener.errors import AccountsDisabled, CookieRejected, InternalError, TokenError, UpstreamError
from spotify_tokener.freshness import Freshness
from spotify_tokener.observer import NO_OBSERVER, OUTCOME_OK, FetchObserver, Kind
from spotify_tokener.settings import Settings
from spotify_tokener.slot import Fetch, Served, TokenSlot
from spotify_tokener.token import Token

log = logging.getLogger(__name__)


class Harvester(Protocol):
    """Obtains one fresh token per call; caching and retrying are the service's business.

    Defined here, where it is needed: the browser implementation lives at the edge (``harvester``).
    """

    async def fetch(self, sp_dc: str | None = None) -> Token: ...


@dataclass(frozen=True, slots=True)
class TokenStatus:
    has_token: bool
    is_valid: bool
    should_refresh: bool
    expires_at_ms: int | None
    refreshing: bool
    ms_until_expiry: int | None
    ms_until_refresh: int | None
    last_error: str | None
    consecutive_failures: int
    refreshed_at_ms: int | None
    accounts_cached: int
    cooling_down: bool
    retry_at_ms: int | None
    shared_store_available: bool | None


class TokenService:
    """The anonymous token kept fresh in the background, and account tokens kept on demand."""

    def __init__(
        self,
        harvester: Harvester,
        settings: Settings,
        clock: Clock = wall_clock_ms,
        coordinator: Coordinator | None = None,
        observer: FetchObserver = NO_OBSERVER,
    ) -> None:
        self._harvester = harvester
        self._coordinator: Coordinator = coordinator or LocalCoordinator()
        self._observer = observer
        self._settings = settings
        self._clock = clock
        self.freshness = Freshness.from_seconds(
            settings.expiry_buffer, settings.refresh_window, settings.stale_margin
        )
        force_gap_ms = round(settings.force_min_interval * 1000)
        self._anonymous = TokenSlot(ANONYMOUS_KEY, self.freshness, clock, self._cooldown_s, force_gap_ms)
        self._fetch_anonymous = self._coordinated(self._anonymous, self._fetch_with_retries)
        self._force_anonymous = self._coordinated(self._anonymous, self._fetch_with_retries, force=True)
        self._accounts = AccountSlots(
            settings.max_accounts, self.freshness, clock, self._cooldown_s, force_gap_ms
        )
        self._refresher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Begin renewing in the background; the first fetch starts at once."""
        await self._coordinator.start()
        self._refresher = asyncio.get_running_loop().create_task(self._refresh_forever())

    async def stop(self) -> None:
        """Stop renewing and abandon fetches under way; their waiters are told the service is stopping."""
        if self._refresher is not None:
            self._refresher.cancel()
            await asyncio.gather(self._refresher, return_exceptions=True)
            self._refresher = None
        await self._anonymous.cancel()
        await self._accounts.cancel()
        await self._coordinator.close()

    @property
    def shared_store_available(self) -> bool | None:
        """Whether Redis answered last time it was asked; None when there is none."""
        return self._coordinator.available

    @property
    def anonymous(self) -> TokenSlot:
        """The anonymous slot, for the HTTP fast path: ``now < slot.servable_until_ms`` means
        ``slot.token`` may be served as is. Anything else goes through :meth:`get_token`."""
        return self._anonymous

    async def get_token(self, *, force: bool = False, sp_dc: str | None = None) -> Served:
        """The anonymous token, or with ``sp_dc`` that account's: never one for the other."""
        if sp_dc is None:
            fetch = self._force_anonymous if force else self._fetch_anonymous
            return await self._anonymous.get(fetch, force=force)
        if not self._settings.allow_accounts:
            raise AccountsDisabled("account tokens (sp_dc cookie) are disabled on this service")
        slot = self._accounts.slot_for(sp_dc)
        fetch = self._coordinated(slot, partial(self._fetch_with_retries, sp_dc), force=force)
        return await slot.get(fetch, force=force)

    def _coordinated(self, slot: TokenSlot, harvest: Harvest, *, force: bool = False) -> Fetch:
        """The slot's fetch, shared with other replicas through the coordinator when there are any."""

        async def fetch() -> Token:
            return await self._coordinator.fetch(slot.key, harvest, slot.token, force=force)

        return fetch

    def status(self) -> TokenStatus:
        slot, now = self._anonymous, self._clock()
        token = slot.token
        return TokenStatus(
            has_token=token is not None,
            is_valid=self.freshness.is_servable(token, now),
            should_refresh=self.freshness.wants_refresh(token, slot.refreshed_at_ms, now),
            expires_at_ms=token.expires_at_ms if token else None,
            refreshing=slot.refreshing,
            ms_until_expiry=token.remaining_ms(now) if token else None,
            ms_until_refresh=self.freshness.ms_until_refresh(token, slot.refreshed_at_ms, now)
            if token
            else None,
            last_error=str(slot.last_error) if slot.last_error else None,
            consecutive_failures=slot.failures,
            refreshed_at_ms=slot.refreshed_at_ms,
            accounts_cached=self._accounts.count(),
            cooling_down=slot.cooling_down(now),
            retry_at_ms=slot.retry_at_ms if slot.cooling_down(now) else None,
            shared_store_available=self.shared_store_available,
        )

    async def _refresh_forever(self) -> None:
        """Renew the anonymous token; accounts are only renewed when their owners ask again."""
        slot = self._anonymous
        while True:
            now = self._clock()
            due = self.freshness.wants_refresh(slot.token, slot.refreshed_at_ms, now)
            if due and not slot.cooling_down(now):
                try:
                    await asyncio.shield(slot.refresh_in_background(self._fetch_anonymous))
                except TokenError:
                    pass  # recorded by the slot, which now cools down
                except Exception:
                    log.exception("the refresher hit an unexpected error; it keeps running")
            self._accounts.drop_expired()
            await asyncio.sleep(self._seconds_until_next_check(slot))

    def _seconds_until_next_check(self, slot: TokenSlot) -> float:
        """Exactly until renewal is due, or until the cool-down after a failure ends."""
        now = self._clock()
        if slot.cooling_down(now):
            wait_ms = slot.retry_at_ms - now
        else:
            wait_ms = self.freshness.ms_until_refresh(slot.token, slot.refreshed_at_ms, now)
        return min(max(wait_ms, 0) / 1000, self._settings.refresh_interval)

    def _cooldown_s(self, failures: int, error: TokenError) -> float:
        """After a failed fetch (itself retried), keep doubling the wait, up to ``TOKENER_COOLDOWN_MAX``."""
        settings = self._settings
        delay = backoff_delay(
            settings.retries + failures,
            settings.retry_base_delay,
            error.retry_after,
            settings.retry_after_max,
        )
        return min(delay, settings.cooldown_max)

    async def _fetch_with_retries(self, sp_dc: str | None = None) -> Token:
        settings = self._settings
        retrying = AsyncRetrying(
            stop=stop_after_attempt(settings.retries + 1),
            wait=RetryAfterWait(settings.retry_base_delay, settings.retry_after_max),
            retry=retry_if_exception(lambda error: isinstance(error, TokenError) and error.retryable),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._attempt(attempt.retry_state.attempt_number, sp_dc)
        raise AssertionError("tenacity stops by raising")  # pragma: no cover

    async def _attempt(self, number: int, sp_dc: str | None) -> Token:
        """One harvest, logged as one line. Unexpected errors become client-safe ones."""
        kind: Kind = "account" if sp_dc else "anonymous"
        where = f"attempt {number}/{self._settings.retries + 1}, {kind}"
        started = time.perf_counter()
        try:
            token = _checked_identity(await self._harvester.fetch(sp_dc), wants_account=sp_dc is not None)
        except TokenError as error:
            self._observer.fetch_attempt(kind, error.outcome, time.perf_counter() - started, number)
            log.warning("token fetch failed: %s, %.0f ms: %s", where, _ms_since(started), error)
            raise
        except Exception as error:
            # Only the type: a library's message could quote the cookie it was handed.
            self._observer.fetch_attempt(kind, InternalError.outcome, time.perf_counter() - started, number)
            log.error("token fetch crashed: %s: %s", where, type(error).__name__)
            raise InternalError("unexpected error while fetching a token") from None
        self._observer.fetch_attempt(kind, OUTCOME_OK, time.perf_counter() - started, number)
        remaining_s = token.remaining_ms(self._clock()) // 1000
        log.info("token fetch ok: %s, %.0f ms, expires in %d s", where, _ms_since(started), remaining_s)
        return token


def _checked_identity(token: Token, *, wants_account: bool) -> Token:
    """Never hand an anonymous caller an account token, nor an account caller an anonymous one."""
    if wants_account and token.is_anonymous:
        raise CookieRejected("sp_dc cookie was not accepted")
    if not wants_account and not token.is_anonymous:
        raise UpstreamError("Spotify returned an account token to an anonymous request")
    return token


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000
