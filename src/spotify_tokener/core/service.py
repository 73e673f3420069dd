"""Keeps a good token on hand: the slots, and the refresher that renews the anonymous token early. It
knows nothing of HTTP, browsers or Redis (only ``ports``), so every rule here is tested with an
in-memory source and injected time.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from functools import partial

from spotify_tokener.core.accounts import AccountSlots
from spotify_tokener.core.fetcher import Fetcher
from spotify_tokener.core.ports import (
    NO_STATE,
    Coordinator,
    Fetch,
    FetchObserver,
    Left,
    LocalCoordinator,
    StateStore,
    TokenSource,
)
from spotify_tokener.core.slot import CachedToken, Served, TokenSlot
from spotify_tokener.domain.backoff import Backoff
from spotify_tokener.domain.clock import Clock, Sleep, real_sleep, wall_clock_ms
from spotify_tokener.domain.errors import AccountsDisabled, CookieRejected, TokenError
from spotify_tokener.domain.freshness import Freshness
from spotify_tokener.domain.token import ANONYMOUS, Token, read_token_record, token_record

log = logging.getLogger(__name__)

ANONYMOUS_DOCUMENT = "token.json"


@dataclass(frozen=True, slots=True)
class CoreConfig:
    """The settings the core reads, and only those, named as in ``Settings`` (``wiring.core_config``)."""

    freshness: Freshness
    backoff: Backoff
    max_contexts: int  # places: attempts at once, one of them kept for the anonymous token
    queue_size: int
    queue_timeout: float
    max_accounts: int
    new_accounts_per_minute: int
    rejected_cookie_memory: float
    allow_accounts: bool
    refresh_interval: float


class TokenService:
    """``anonymous``, ``accounts`` and ``coordinator`` are read by the status answer and the metrics
    (``http/status.py`` builds the answer): only the service fetches through them."""

    def __init__(
        self,
        source: TokenSource,
        config: CoreConfig,
        *,
        observer: FetchObserver,
        clock: Clock = wall_clock_ms,
        sleep: Sleep = real_sleep,
        coordinator: Coordinator | None = None,
        kept: StateStore = NO_STATE,
    ) -> None:
        """``kept`` holds the anonymous token across restarts (never an account's)."""
        self._config = config
        self._kept = kept
        self._clock = clock
        self._sleep = sleep
        self.coordinator: Coordinator = coordinator or LocalCoordinator()
        self.freshness = freshness = config.freshness
        self._fetcher = Fetcher(source, config, clock=clock, sleep=sleep, observer=observer)
        self.anonymous = TokenSlot(ANONYMOUS, "anonymous", freshness, config.backoff, clock)
        self._fetch_anonymous = self._coordinated(self.anonymous, self._fetcher.fetch)
        self._force_anonymous = self._coordinated(self.anonymous, self._fetcher.fetch, force=True)
        self.accounts = AccountSlots(config, clock)
        self._refresher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Begin renewing in the background; the first fetch starts at once."""
        await self.coordinator.start()
        self._resume()
        self.anonymous.watch(self._keep)
        self._refresher = asyncio.get_running_loop().create_task(self._refresh_forever())

    async def stop(self) -> None:
        """Stop renewing and abandon fetches under way; their waiters are told the service is stopping."""
        if self._refresher is not None:
            self._refresher.cancel()
            await asyncio.gather(self._refresher, return_exceptions=True)
            self._refresher = None
        await self.anonymous.cancel()
        await self.accounts.cancel()
        await self.coordinator.close()

    async def get_token(
        self, *, force: bool = False, sp_dc: str | None = None, left: Left | None = None
    ) -> Served:
        """The anonymous token, or with ``sp_dc`` that account's: never one for the other. A caller
        whose ``left`` resolves stops waiting for a fetch (:class:`CallerLeft`)."""
        if sp_dc is None:
            fetch = self._force_anonymous if force else self._fetch_anonymous
            return await self.anonymous.get(fetch, force=force, left=left)
        if not self._config.allow_accounts:
            raise AccountsDisabled("account tokens (sp_dc cookie) are disabled on this service")
        slot = self.accounts.slot_for(sp_dc)
        fetch = self._coordinated(slot, partial(self._fetcher.fetch, sp_dc, slot.awaited), force=force)
        try:
            return await slot.get(fetch, force=force, left=left)
        except CookieRejected:
            self.accounts.reject(slot)
            raise

    def _coordinated(self, slot: TokenSlot, fetch_here: Fetch, *, force: bool = False) -> Fetch:
        """The slot's fetch, shared with other replicas through the coordinator when there are any."""

        async def fetch() -> Token:
            wanted = partial(slot.accepts, requested_at_ms=self._clock(), force=force)
            return await self.coordinator.fetch(slot.identity, fetch_here, wanted)

        return fetch

    def renewal_due_ms(self) -> int:
        """When the anonymous token is due for renewal (epoch ms; 0: now), a cool-down aside."""
        cached = self.anonymous.cached
        return self.freshness.refresh_due_ms(cached.token, cached.fetched_at_ms) if cached else 0

    def _resume(self) -> None:
        """The anonymous token kept from before a restart, if plausible and still servable: no fetch."""
        now = self._clock()
        kept = read_token_record(self._kept.load(ANONYMOUS_DOCUMENT), now)
        if kept is not None and kept[0].is_anonymous and self.freshness.is_servable(kept[0], now):
            self.anonymous.hold(*kept)
            log.info("anonymous token kept from before the restart, expiring at %d ms", kept[0].expires_at_ms)

    def _keep(self, cached: CachedToken) -> None:
        self._kept.save(ANONYMOUS_DOCUMENT, token_record(cached.token, cached.fetched_at_ms))

    async def _refresh_forever(self) -> None:
        """Renew the anonymous token when due, or once the cool-down after a failure ends; accounts are
        only renewed when their owners ask again."""
        while True:
            if self._ms_until_due() == 0:
                try:
                    await asyncio.shield(self.anonymous.refresh_in_background(self._fetch_anonymous))
                except TokenError:
                    pass  # recorded by the slot, which now cools down
                except Exception:
                    log.exception("the refresher hit an unexpected error; it keeps running")
            self.accounts.drop_expired()
            await self._sleep(min(self._ms_until_due() / 1000, self._config.refresh_interval))

    def _ms_until_due(self) -> int:
        now = self._clock()
        return max((self.anonymous.retry_at_ms(now) or self.renewal_due_ms()) - now, 0)
