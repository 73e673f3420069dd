"""The proxy pool's rules on an injected clock, and ThroughProxies moving an attempt between them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from spotify_tokener.core.proxies import NO_PROXY, ProxyPool, ThroughProxies
from spotify_tokener.domain.backoff import Backoff
from spotify_tokener.domain.errors import (
    CookieRejected,
    FetchTimeout,
    PageUnreachable,
    RateLimited,
    Refused,
    TokenError,
    UpstreamError,
)
from spotify_tokener.domain.proxy import Proxy
from spotify_tokener.domain.token import ANONYMOUS, Token, identity_of

A, B, C = (Proxy("http", host, 3128, "user", "topsecret") for host in ("a", "b", "c"))
BENCH = Backoff(30.0, 0, 900.0, 900.0)
SECOND = 1000


class Clock:
    def __init__(self) -> None:
        self.now_ms = 1_800_000_000_000

    def __call__(self) -> int:
        return self.now_ms

    def advance(self, seconds: float) -> None:
        self.now_ms += round(seconds * SECOND)


def pool_of(*proxies: Proxy, clock: Clock, optional: bool = False, remembered: int = 10) -> ProxyPool:
    return ProxyPool(proxies, BENCH, clock, optional=optional, remembered=remembered)


def test_new_identities_are_spread_and_each_keeps_its_proxy() -> None:
    clock = Clock()
    pool = pool_of(A, B, C, clock=clock)
    first = {}
    for name in ("one", "two", "three"):
        proxy = pool.order(name)[0]
        assert proxy is not None
        pool.succeeded(proxy, name, clock())
        first[name] = proxy
    assert sorted(proxy.host for proxy in first.values()) == ["a", "b", "c"]
    for _ in range(3):
        assert {name: pool.order(name)[0] for name in first} == first


def test_with_an_proxy_cooling_down_new_identities_are_spread_evenly_over_the_others() -> None:
    clock = Clock()
    pool = pool_of(A, B, C, clock=clock)
    pool.failed(A, PageUnreachable("down"), clock())
    chosen = []
    for name in ("one", "two", "three", "four"):
        proxy = pool.order(name)[0]
        assert proxy is not None
        pool.succeeded(proxy, name, clock())
        chosen.append(proxy.host)
    assert sorted(chosen) == ["b", "b", "c", "c"]


def test_a_failing_proxy_is_cooling_down_for_a_doubling_while_then_comes_back() -> None:
    clock = Clock()
    pool = pool_of(A, B, clock=clock)
    error = PageUnreachable("the proxy http://a:3128 could not be reached")
    assert pool.failed(A, error, clock()) == 30
    assert pool.failed(A, error, clock()) == 60
    assert pool.order("x") == [B]
    clock.advance(59)
    assert A not in pool.order("x")
    clock.advance(1)
    assert A in pool.order("x")
    pool.succeeded(A, "x", clock())
    assert pool.failed(A, error, clock()) == 30  # a success forgets the failures before it


def test_a_bench_lasts_at_least_the_retry_after_and_at_most_its_cap() -> None:
    clock = Clock()
    pool = pool_of(A, clock=clock)
    assert pool.failed(A, RateLimited("429", retry_after=120), clock()) == 120
    assert pool.failed(A, RateLimited("429", retry_after=86_400), clock()) == 900


def test_tries_that_fail_together_double_the_bench_once() -> None:
    clock = Clock()
    pool = pool_of(A, clock=clock)
    started = clock()
    clock.advance(1)
    assert [pool.failed(A, RateLimited("429"), started) for _ in range(3)] == [30, 30, 30]
    assert pool.failed(A, RateLimited("429", retry_after=120), started) == 120  # stretched, not doubled
    assert pool.failed(A, RateLimited("429"), clock()) == 120  # a try begun since: still 120 left
    clock.advance(120)
    assert pool.failed(A, RateLimited("429"), clock()) == 120  # third failure in a row: 30 * 4


def test_a_failure_of_a_try_older_than_the_last_success_cools_nothing_down() -> None:
    clock = Clock()
    pool = pool_of(A, B, clock=clock)
    slow = clock()  # a try that will time out, begun before...
    clock.advance(1)
    pool.succeeded(A, "x", clock())  # ...one that got through
    assert pool.failed(A, FetchTimeout.after(20), slow) == 0
    assert pool.order("x")[0] == A


def test_a_success_that_began_after_a_failing_try_lifts_its_bench() -> None:
    clock = Clock()
    pool = pool_of(A, B, clock=clock)
    failing = clock()
    clock.advance(1)
    succeeding = clock()
    clock.advance(1)
    pool.failed(A, PageUnreachable("down"), failing)
    pool.succeeded(A, "x", succeeding)
    assert pool.order("x")[0] == A


def test_a_success_that_began_before_a_failure_does_not_lift_its_bench() -> None:
    clock = Clock()
    pool = pool_of(A, B, clock=clock)
    started = clock()
    clock.advance(1)
    pool.failed(A, RateLimited("429", retry_after=120), clock())
    pool.succeeded(A, "x", started)  # it left before the 429 came back
    assert pool.order("x") == [B]


def test_an_identity_moves_only_when_its_proxy_is_cooling_down_and_stays_where_it_moved() -> None:
    clock = Clock()
    pool = pool_of(A, B, clock=clock)
    pool.succeeded(A, "account", clock())
    pool.failed(A, Refused("Spotify refused the token request (403)"), clock())
    assert pool.order("account") == [B]
    pool.succeeded(B, "account", clock())
    clock.advance(3600)  # A is back, but the account does not jump again
    assert pool.order("account") == [B, A]


def test_with_every_proxy_cooling_down_the_first_to_come_back_is_used_never_a_direct_connection() -> None:
    clock = Clock()
    pool = pool_of(A, B, clock=clock)
    pool.failed(A, PageUnreachable("down"), clock())
    pool.failed(A, PageUnreachable("down"), clock())  # 60 s
    pool.failed(B, PageUnreachable("down"), clock())  # 30 s
    assert pool.all_cooling_down()
    assert pool.order("x") == [B]


def test_a_direct_connection_is_the_last_resort_only_when_allowed() -> None:
    clock = Clock()
    pool = pool_of(A, clock=clock, optional=True)
    assert pool.order("x") == [A, None]
    pool.failed(A, PageUnreachable("down"), clock())
    assert pool.order("x") == [None]


def test_the_proxies_remembered_per_identity_are_bounded() -> None:
    clock = Clock()
    pool = pool_of(A, B, clock=clock, remembered=2)
    for name in ("one", "two", "three"):
        pool.succeeded(B, name, clock())  # each new assignment to B makes A the next one's start
    assert pool.order("three")[0] == B
    assert pool.order("two")[0] == B
    assert pool.order("one")[0] == A  # forgotten: spread like a new identity


@dataclass
class ByProxy:
    """A source whose answer depends on the proxy; records each try."""

    answers: dict[Proxy | None, TokenError | Callable[[], TokenError]] = field(default_factory=dict)
    tries: list[tuple[str | None, Proxy | None]] = field(default_factory=list)
    hang: set[Proxy | None] = field(default_factory=set)

    async def attempt(self, sp_dc: str | None = None, proxy: Proxy | None = None) -> Token:
        self.tries.append((sp_dc, proxy))
        if proxy in self.hang:
            await asyncio.Event().wait()
        answer = self.answers.get(proxy)
        if answer is not None:
            raise answer if isinstance(answer, TokenError) else answer()
        return Token("BQ-token", 4_000_000_000_000, "client", sp_dc is None)


@dataclass
class Outcomes:
    seen: list[tuple[str, str]] = field(default_factory=list)

    def proxy_ended(self, proxy_label: str, outcome: str) -> None:
        self.seen.append((proxy_label, outcome))


def through_proxies(
    source: ByProxy, pool: ProxyPool, timeout_s: float = 5.0
) -> tuple[ThroughProxies, Outcomes]:
    outcomes = Outcomes()
    return ThroughProxies(source, pool, outcomes, timeout_s, Clock()), outcomes


@pytest.mark.parametrize(
    "failure",
    [
        PageUnreachable("the proxy http://a:3128 could not be reached"),
        RateLimited("Spotify rate-limited the token request (429)", retry_after=5),
        Refused("Spotify refused the token request (403)"),
    ],
)
async def test_a_proxys_failure_moves_the_same_attempt_to_the_next_proxy(failure: TokenError) -> None:
    clock = Clock()
    pool = pool_of(A, B, clock=clock)
    source = ByProxy({A: failure})
    route, outcomes = through_proxies(source, pool)
    token = await route.attempt()
    assert token.access_token == "BQ-token"
    assert [proxy for _, proxy in source.tries] == [A, B]
    assert outcomes.seen == [("http://a:3128", failure.outcome), ("http://b:3128", "ok")]
    assert pool.order(ANONYMOUS) == [B]  # cooling down, and the anonymous token now leaves through B


async def test_an_accounts_429_or_403_cools_nothing_down_but_its_network_failures_do() -> None:
    pool = pool_of(A, B, clock=Clock())
    route, _ = through_proxies(ByProxy({A: Refused("Spotify refused the token request (403)")}), pool)
    with pytest.raises(Refused):
        await route.attempt("AQ-cookie")  # maybe the account: other callers keep proxy A...
    assert pool.order(ANONYMOUS)[0] == A
    assert pool.order(identity_of("AQ-cookie"))[0] == B  # ...while its own retry moves on
    route, _ = through_proxies(
        ByProxy({A: PageUnreachable("the proxy http://a:3128 could not be reached")}), pool
    )
    assert (await route.attempt("AQ-another-cookie")).access_token == "BQ-token"  # tried A, then B
    assert A not in pool.order(ANONYMOUS)


@pytest.mark.parametrize(
    "failure",
    [CookieRejected("sp_dc cookie was not accepted"), UpstreamError("Spotify answered with HTTP 500")],
)
async def test_a_failure_that_is_not_the_proxys_ends_the_attempt_and_cools_nothing_down(
    failure: TokenError,
) -> None:
    pool = pool_of(A, B, clock=Clock())
    source = ByProxy({A: failure})
    route, _ = through_proxies(source, pool)
    with pytest.raises(type(failure)):
        await route.attempt("AQ-cookie")
    assert [proxy for _, proxy in source.tries] == [A]
    assert not any(state.failures for state in pool.states())


async def test_when_every_proxy_fails_the_attempt_ends_with_the_last_failure() -> None:
    pool = pool_of(A, B, clock=Clock())
    route, _ = through_proxies(ByProxy({A: PageUnreachable("a down"), B: Refused("b refused")}), pool)
    with pytest.raises(Refused):
        await route.attempt()
    assert pool.all_cooling_down()


async def test_a_hanging_proxy_costs_one_attempt_its_time_and_is_cooling_down() -> None:
    clock = Clock()
    pool = pool_of(A, B, clock=clock)
    source = ByProxy(hang={A})
    route, outcomes = through_proxies(source, pool, timeout_s=0.02)
    with pytest.raises(FetchTimeout, match=r"within 0\.02 s"):
        await route.attempt()
    assert outcomes.seen == [("http://a:3128", "timeout")]
    assert (await route.attempt()).access_token == "BQ-token"
    assert source.tries[-1] == (None, B)


async def test_an_account_is_kept_on_the_proxy_that_served_it() -> None:
    pool = pool_of(A, B, C, clock=Clock())
    source = ByProxy()
    route, _ = through_proxies(source, pool)
    for _ in range(4):
        await route.attempt("AQ-cookie")
    proxies = {proxy for sp_dc, proxy in source.tries}
    assert len(proxies) == 1
    assert pool.order(identity_of("AQ-cookie"))[0] in proxies


async def test_a_direct_try_is_counted_as_direct() -> None:
    pool = pool_of(A, clock=Clock(), optional=True)
    route, outcomes = through_proxies(ByProxy({A: PageUnreachable("down")}), pool)
    await route.attempt()
    assert outcomes.seen == [("http://a:3128", "unreachable"), (NO_PROXY, "ok")]
