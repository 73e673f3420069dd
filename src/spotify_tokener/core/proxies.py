"""Leaving through proxies: which proxy an attempt takes, and cooling down the ones that fail.

Spotify's firewall turns some addresses away (429s, 403s) while it serves others, and a proxy can die.
So an identity keeps its proxy while it works (a session that jumps between addresses looks stolen), and
a failing one cools down while the attempt moves on to the next at once, unseen by the client.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from spotify_tokener.core.ports import OUTCOME_OK, ProxiedSource, ProxyObserver
from spotify_tokener.core.standing import Standing
from spotify_tokener.domain.backoff import Backoff
from spotify_tokener.domain.clock import Clock
from spotify_tokener.domain.errors import FetchTimeout, ProxyRule, TokenError
from spotify_tokener.domain.proxy import Proxy
from spotify_tokener.domain.token import Token, identity_of

log = logging.getLogger(__name__)

NO_PROXY = "none"
"""How no proxy is named where proxies are named by their labels (metrics)."""


@dataclass(slots=True, kw_only=True)
class ProxyState(Standing):
    """What the pool knows of one proxy; ``status`` shows it (by its label, never its credentials)."""

    proxy: Proxy
    # When the tries behind the last success and the last counted failure began: a result is news
    # only if its try began after the other kind's did.
    success_began_ms: int | None = None
    failure_began_ms: int | None = None


class ProxyPool:
    def __init__(
        self,
        proxies: Sequence[Proxy],
        cooldown: Backoff,
        clock: Clock,
        *,
        optional: bool,
        remembered: int,
    ) -> None:
        self._states = [ProxyState(proxy=proxy) for proxy in proxies]
        self._by_proxy = {state.proxy: state for state in self._states}
        self._cooldown = cooldown
        self._clock = clock
        self._optional = optional
        self._remembered = remembered
        self._stuck: OrderedDict[str, Proxy] = OrderedDict()  # identity -> its proxy
        self._next = 0  # where the next identity without a proxy starts looking, to spread them

    def order(self, identity: str) -> list[Proxy | None]:
        """The proxies one attempt for ``identity`` tries, in turn, until one is not to blame; with every
        one cooling down, the one back first: never none, unless the operator allowed it."""
        now, stuck = self._clock(), self._stuck.get(identity)
        rotation = self._states[self._next :] + self._states[: self._next]
        usable = [state.proxy for state in rotation if state.usable(now)]
        usable.sort(key=lambda proxy: proxy != stuck)  # its own proxy first, then the others in turn
        unproxied: list[Proxy | None] = [None] if self._optional else []
        if usable or unproxied:
            return [*usable, *unproxied]
        return [min(self._states, key=lambda state: state.retry_at_ms).proxy]

    def succeeded(self, proxy: Proxy, identity: str, started_ms: int) -> None:
        """A try that began at ``started_ms`` went through ``proxy``: it becomes ``identity``'s proxy,
        and its cool-down ends, unless a try that began after this one failed (newer news)."""
        state = self._by_proxy[proxy]
        if _began_before(started_ms, state.failure_began_ms):
            return
        state.failures, state.retry_at_ms = 0, 0
        state.last_success_ms, state.success_began_ms = self._clock(), started_ms
        if self._stuck.get(identity) != proxy:  # a new assignment: the next one starts after it
            self._next = (self._states.index(state) + 1) % len(self._states)
        self._stick(identity, proxy)

    def move_on(self, identity: str, proxy: Proxy) -> None:
        """``identity``'s next attempt starts at the proxy after ``proxy``, which does not cool down:
        Spotify refused this identity there, maybe for the address, maybe for the account."""
        index = self._states.index(self._by_proxy[proxy])
        self._stick(identity, self._states[(index + 1) % len(self._states)].proxy)

    def failed(self, proxy: Proxy, error: TokenError, started_ms: int) -> float:
        """Cools ``proxy`` down after ``error`` in a try begun at ``started_ms``; returns for how long (s).
        A try older than the last success is old news. Tries under way together fail together: only the
        first counts (and doubles the cool-down), the others only stretch it to their ``Retry-After``."""
        state = self._by_proxy[proxy]
        now = self._clock()
        if _began_before(started_ms, state.success_began_ms):
            return max(state.retry_at_ms - now, 0) / 1000
        if _began_before(started_ms, state.last_failure_ms):
            seconds = min(self._cooldown.honoured_s(error.retry_after or 0.0), self._cooldown.cooldown_max_s)
        else:
            state.failures += 1
            state.failure_began_ms = started_ms
            seconds = self._cooldown.cooldown_s(state.failures, error.retry_after)
        state.retry_at_ms = max(state.retry_at_ms, now + round(seconds * 1000))
        state.last_error, state.last_failure_ms = str(error), now
        return (state.retry_at_ms - now) / 1000

    def _stick(self, identity: str, proxy: Proxy) -> None:
        self._stuck[identity] = proxy
        self._stuck.move_to_end(identity)
        while len(self._stuck) > self._remembered:
            self._stuck.popitem(last=False)

    def states(self) -> list[ProxyState]:
        return list(self._states)

    def all_cooling_down(self) -> bool:
        now = self._clock()
        return not any(state.usable(now) for state in self._states)


def _began_before(started_ms: int, other_ms: int | None) -> bool:
    return other_ms is not None and started_ms < other_ms


class ThroughProxies:
    """A token source whose attempt leaves through the pool's proxies, within ``timeout_s`` whichever it
    tries; a failure that is not the proxy's (a dead cookie, a crashed browser) ends it as without them."""

    def __init__(
        self, source: ProxiedSource, pool: ProxyPool, observer: ProxyObserver, timeout_s: float, clock: Clock
    ) -> None:
        self._source = source
        self._pool = pool
        self._observer = observer
        self._timeout_s = timeout_s
        self._clock = clock

    async def attempt(self, sp_dc: str | None = None) -> Token:
        identity = identity_of(sp_dc)
        order = self._pool.order(identity)
        try:
            async with asyncio.timeout(self._timeout_s):
                for proxy in order:
                    started_ms = self._clock()
                    try:
                        token = await self._source.attempt(sp_dc, proxy)
                    except TokenError as error:
                        self._report(proxy, error.outcome)
                        rule = error.failure.proxy
                        if proxy is None or rule is ProxyRule.INNOCENT:
                            raise
                        # Spotify's 429s and 403s on an account's request may be about the account, not
                        # the address: a handful of bad cookies must not cool every proxy down for all.
                        if rule is ProxyRule.NEXT_IF_ANONYMOUS and sp_dc is not None:
                            self._pool.move_on(identity, proxy)  # its retry moves on
                            raise
                        self._cool_down(proxy, started_ms, error)
                        if rule is ProxyRule.SPENT or proxy is order[-1]:
                            raise
                        continue
                    self._report(proxy, OUTCOME_OK)
                    if proxy is not None:
                        self._pool.succeeded(proxy, identity, started_ms)
                    return token
        except TimeoutError:
            timeout = FetchTimeout.after(self._timeout_s)
            self._report(proxy, timeout.outcome)  # the order is never empty: one was tried
            if proxy is not None:
                self._cool_down(proxy, started_ms, timeout)
            raise timeout from None
        raise AssertionError("the last proxy of the order returns or raises")  # pragma: no cover

    def _cool_down(self, proxy: Proxy, started_ms: int, error: TokenError) -> None:
        seconds = self._pool.failed(proxy, error, started_ms)
        log.warning("proxy %s cools down for %.0f s: %s", proxy.label, seconds, error)

    def _report(self, proxy: Proxy | None, outcome: str) -> None:
        self._observer.proxy_ended(proxy.label if proxy else NO_PROXY, outcome)
