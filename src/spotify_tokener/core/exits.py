"""Leaving through proxies: which exit an attempt takes, and setting aside the ones that fail.

Spotify's firewall turns some addresses away (429s, 403s) while it serves others, and a proxy can
die. So each identity keeps its exit while that exit works (a session that jumps between addresses
looks stolen), a failing exit is *benched* for a doubling while, and an attempt whose exit fails
moves on to the next usable one at once, so the client never sees that failure. With every exit
benched, the one whose bench ends first is used: never a direct connection, unless the operator
allowed it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from spotify_tokener.core.accounts import identity_of
from spotify_tokener.core.bench import Bench
from spotify_tokener.core.ports import OUTCOME_OK, ExitObserver, ExitSource
from spotify_tokener.domain.backoff import Backoff
from spotify_tokener.domain.clock import Clock
from spotify_tokener.domain.egress import Proxy
from spotify_tokener.domain.errors import FetchTimeout, TokenError
from spotify_tokener.domain.token import Token

log = logging.getLogger(__name__)

Exit = Proxy | None
"""Where an attempt leaves through: a proxy, or ``None`` for a direct connection."""

DIRECT = "direct"
"""A direct connection's name where exits are named by their labels (metrics)."""


@dataclass(slots=True, kw_only=True)
class ExitState(Bench):
    """What the pool knows of one proxy; ``status`` shows it (by its label, never its credentials)."""

    proxy: Proxy
    # When the tries behind the last success and the last counted failure began: a result is news
    # only if its try began after the other kind's did.
    success_began_ms: int | None = None
    failure_began_ms: int | None = None


class ExitPool:
    """The configured proxies, their health, and which identity leaves through which."""

    def __init__(
        self,
        proxies: Sequence[Proxy],
        bench: Backoff,
        clock: Clock,
        *,
        fallback_direct: bool,
        remembered: int,
    ) -> None:
        self._states = [ExitState(proxy=proxy) for proxy in proxies]
        self._by_proxy = {state.proxy: state for state in self._states}
        self._bench = bench
        self._clock = clock
        self._fallback_direct = fallback_direct
        self._remembered = remembered
        self._stuck: OrderedDict[str, Proxy] = OrderedDict()  # identity -> its exit
        self._next = 0  # where the next identity without an exit starts looking, to spread them

    def order(self, identity: str) -> list[Exit]:
        """The exits one attempt for ``identity`` tries, in turn, until one is not to blame."""
        now = self._clock()
        usable = [state.proxy for state in self._rotation() if state.usable(now)]
        stuck = self._stuck.get(identity)
        if stuck in usable:
            usable.remove(stuck)
            usable.insert(0, stuck)
        direct: list[Exit] = [None] if self._fallback_direct else []
        if usable:
            return [*usable, *direct]
        if direct:
            return direct
        first_back = min(self._states, key=lambda state: state.benched_until_ms)
        return [first_back.proxy]

    def succeeded(self, proxy: Proxy, identity: str, started_ms: int) -> None:
        """A try that began at ``started_ms`` went through ``proxy``: it becomes ``identity``'s exit,
        and its bench ends, unless a try that began after this one failed (newer news)."""
        state = self._by_proxy[proxy]
        if _began_before(started_ms, state.failure_began_ms):
            return
        state.failures, state.benched_until_ms = 0, 0
        state.last_success_ms, state.success_began_ms = self._clock(), started_ms
        if self._stuck.get(identity) != proxy:  # a new assignment: the next one starts after it
            self._next = (self._states.index(state) + 1) % len(self._states)
        self._stick(identity, proxy)

    def move_on(self, identity: str, proxy: Proxy) -> None:
        """``identity``'s next attempt starts at the proxy after ``proxy``, which is not benched:
        Spotify refused this identity there, maybe for the address, maybe for the account."""
        index = self._states.index(self._by_proxy[proxy])
        self._stick(identity, self._states[(index + 1) % len(self._states)].proxy)

    def failed(self, proxy: Proxy, error: TokenError, started_ms: int) -> float:
        """Bench ``proxy`` after ``error`` (for at least its ``Retry-After``) in a try that began at
        ``started_ms``; returns how long it is benched from now, in seconds.

        A try older than the last success is old news and changes nothing. Tries that were under
        way together fail together: only the first of them counts (and doubles the bench), the
        others can only stretch it to their ``Retry-After``.
        """
        state = self._by_proxy[proxy]
        now = self._clock()
        if _began_before(started_ms, state.success_began_ms):
            return max(state.benched_until_ms - now, 0) / 1000
        if _began_before(started_ms, state.last_failure_ms):
            seconds = min(self._bench.honoured_s(error.retry_after or 0.0), self._bench.cooldown_max_s)
        else:
            state.failures += 1
            state.failure_began_ms = started_ms
            seconds = self._bench.cooldown_s(state.failures, error.retry_after)
        state.benched_until_ms = max(state.benched_until_ms, now + round(seconds * 1000))
        state.last_error, state.last_failure_ms = str(error), now
        return (state.benched_until_ms - now) / 1000

    def _stick(self, identity: str, proxy: Proxy) -> None:
        self._stuck[identity] = proxy
        self._stuck.move_to_end(identity)
        while len(self._stuck) > self._remembered:
            self._stuck.popitem(last=False)

    def states(self) -> list[ExitState]:
        return list(self._states)

    def all_benched(self) -> bool:
        now = self._clock()
        return not any(state.usable(now) for state in self._states)

    def _rotation(self) -> list[ExitState]:
        return self._states[self._next :] + self._states[: self._next]


def _began_before(started_ms: int, other_ms: int | None) -> bool:
    return other_ms is not None and started_ms < other_ms


def exits_fault(error: TokenError, *, account: bool) -> bool:
    """Whether another exit might not have failed this way, for everyone. Spotify's 429s and 403s on
    an account's request may be about the account, not the address: only the anonymous token's bench
    an exit (otherwise a handful of bad cookies could bench every proxy for every caller)."""
    return error.blames_exit and not (account and error.about_spotify)


@dataclass(frozen=True, slots=True)
class Try:
    """One exit tried within an attempt, and when (epoch ms)."""

    exit: Exit
    started_ms: int


class Egress:
    """A token source that sends each attempt out through the pool's exits.

    One attempt is bounded by ``timeout_s`` whichever exits it tries; a failure that is not the
    exit's (a dead cookie, a crashed browser) ends it as it would without proxies.
    """

    def __init__(
        self, source: ExitSource, pool: ExitPool, observer: ExitObserver, timeout_s: float, clock: Clock
    ) -> None:
        self._source = source
        self._pool = pool
        self._observer = observer
        self._timeout_s = timeout_s
        self._clock = clock

    async def attempt(self, sp_dc: str | None = None) -> Token:
        identity = identity_of(sp_dc)
        tried: list[Try] = []
        try:
            async with asyncio.timeout(self._timeout_s):
                return await self._through_exits(identity, sp_dc, tried)
        except TimeoutError:
            timeout = FetchTimeout.after(self._timeout_s)
            if tried:
                self._failed(tried[-1], timeout)
            raise timeout from None

    async def _through_exits(self, identity: str, sp_dc: str | None, tried: list[Try]) -> Token:
        last: TokenError | None = None
        for exit_ in self._pool.order(identity):
            tried.append(Try(exit_, self._clock()))
            try:
                token = await self._source.attempt(sp_dc, exit_)
            except TokenError as error:
                if exit_ is None or not exits_fault(error, account=sp_dc is not None):
                    self._report(exit_, error.outcome)
                    if exit_ is not None and error.blames_exit:  # an account refused: its retry moves
                        self._pool.move_on(identity, exit_)
                    raise
                self._failed(tried[-1], error)
                if isinstance(error, FetchTimeout):  # the attempt's time is spent
                    raise
                last = error
                continue
            self._report(exit_, OUTCOME_OK)
            if exit_ is not None:
                self._pool.succeeded(exit_, identity, tried[-1].started_ms)
            return token
        assert last is not None  # the order is never empty, and each exit either returned or failed
        raise last

    def _failed(self, tried: Try, error: TokenError) -> None:
        self._report(tried.exit, error.outcome)
        if tried.exit is None:
            return
        seconds = self._pool.failed(tried.exit, error, tried.started_ms)
        log.warning("proxy %s benched for %.0f s: %s", tried.exit.label, seconds, error)

    def _report(self, proxy: Exit, outcome: str) -> None:
        self._observer.exit_ended(proxy.label if proxy else DIRECT, outcome)
