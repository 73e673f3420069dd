"""The source chain on an injected clock: what falls through, what does not, and the bench."""

from __future__ import annotations

import pytest

from spotify_tokener.core.chain import NamedSource, SourceChain
from spotify_tokener.domain.backoff import Backoff
from spotify_tokener.domain.errors import (
    COOKIE_REJECTED,
    AccountsDisabled,
    BrowserError,
    CookieRejected,
    FetchTimeout,
    NotReady,
    PageUnreachable,
    RateLimited,
    Refused,
    Rejected,
    TokenError,
    UpstreamError,
    refusal,
)
from spotify_tokener.domain.token import Kind, Token
from tests.scripted import Outcome, ScriptedSource

BENCH = Backoff(30.0, 0, 1800.0, 1800.0)
NOW = 1_800_000_000_000


class Clock:
    def __init__(self) -> None:
        self.now_ms = NOW

    def __call__(self) -> int:
        return self.now_ms


class Recorder:
    def __init__(self) -> None:
        self.ended: list[tuple[str, Kind, str]] = []

    def source_ended(self, source: str, kind: Kind, outcome: str) -> None:
        self.ended.append((source, kind, outcome))


class Crashing:
    async def attempt(self, sp_dc: str | None = None) -> Token:
        raise KeyError("a bug")


def chain_of(direct: object, browser: ScriptedSource, clock: Clock, recorder: Recorder) -> SourceChain:
    sources = [NamedSource("direct", direct), NamedSource("browser", browser)]  # type: ignore[arg-type]
    return SourceChain(sources, BENCH, clock, recorder)


@pytest.mark.parametrize(
    "error",
    [
        Rejected("Spotify answered the token request with HTTP 400"),
        Refused("Spotify refused the token request (403)"),
        UpstreamError("Spotify sent a malformed token response"),
        PageUnreachable("Spotify could not be reached (curl error 7)"),
        FetchTimeout.after(5),
        NotReady("the direct source has no secret learned yet"),
    ],
)
async def test_a_failure_of_the_source_falls_through_at_once_and_benches_it(error: TokenError) -> None:
    clock, recorder = Clock(), Recorder()
    direct, browser = ScriptedSource(error), ScriptedSource()
    chain = chain_of(direct, browser, clock, recorder)
    token = await chain.attempt()
    assert token.source == "browser"
    assert recorder.ended == [("direct", "anonymous", error.outcome), ("browser", "anonymous", "ok")]
    state = chain.states()[0]
    assert (state.usable(clock()), state.retry_at_ms, state.last_error) == (
        False,
        NOW + 30_000,
        str(error),
    )


@pytest.mark.parametrize(
    "error",
    [
        RateLimited("Spotify rate-limited the token request (429)", retry_after=7),
        refusal(503, "the token request"),
    ],
)
async def test_a_failure_about_spotify_ends_the_attempt_with_one_upstream_call(error: TokenError) -> None:
    clock, recorder = Clock(), Recorder()
    direct, browser = ScriptedSource(error), ScriptedSource()
    chain = chain_of(direct, browser, clock, recorder)
    with pytest.raises(type(error)):
        await chain.attempt()
    assert browser.calls == []
    assert chain.states()[0].usable(clock())


async def test_a_benched_source_is_skipped_and_its_bench_doubles_until_it_is_restored() -> None:
    clock, recorder = Clock(), Recorder()
    rejected: list[Outcome] = [Rejected("HTTP 400"), Rejected("HTTP 400")]
    direct, browser = ScriptedSource(*rejected), ScriptedSource()
    chain = chain_of(direct, browser, clock, recorder)
    await chain.attempt()
    await chain.attempt()
    assert len(direct.calls) == 1
    clock.now_ms += 30_000
    await chain.attempt()
    assert chain.states()[0].retry_at_ms == clock() + 60_000
    chain.restore("direct")
    assert (await chain.attempt("AQ-cookie")).source == "direct"
    assert chain.states()[0].failures == 0


async def test_the_last_source_is_never_skipped_and_its_failure_is_the_clients() -> None:
    clock, recorder = Clock(), Recorder()
    direct, browser = ScriptedSource(Rejected("HTTP 400")), ScriptedSource(BrowserError("crashed"))
    chain = chain_of(direct, browser, clock, recorder)
    with pytest.raises(BrowserError):
        await chain.attempt()
    assert (await chain.attempt()).source == "browser"
    assert chain.states()[1].usable(clock())
    assert chain.states()[1].last_error == "crashed"


async def test_a_crash_in_a_source_costs_the_client_nothing() -> None:
    clock, recorder = Clock(), Recorder()
    chain = chain_of(Crashing(), ScriptedSource(), clock, recorder)
    assert (await chain.attempt()).source == "browser"
    assert recorder.ended[0] == ("direct", "anonymous", "internal")
    assert chain.states()[0].last_error == "the direct source crashed"


async def test_an_anonymous_answer_to_an_account_is_for_the_last_source_to_confirm() -> None:
    clock, recorder = Clock(), Recorder()
    direct, browser = ScriptedSource(leaks_accounts=False, dead_cookies=frozenset({"AQ-x"})), ScriptedSource()
    chain = chain_of(direct, browser, clock, recorder)
    token = await chain.attempt("AQ-x")  # the direct source got an anonymous token back
    assert (token.source, token.is_anonymous) == ("browser", False)
    assert recorder.ended[0] == ("direct", "account", "cookie_rejected")
    assert chain.states()[0].usable(clock())  # not benched: a dead cookie is no fault of the source


async def test_a_cookie_a_source_is_sure_is_dead_ends_the_attempt_with_no_other_source() -> None:
    clock, recorder = Clock(), Recorder()
    direct, browser = ScriptedSource(CookieRejected(COOKIE_REJECTED)), ScriptedSource()
    chain = chain_of(direct, browser, clock, recorder)
    with pytest.raises(CookieRejected):
        await chain.attempt("AQ-x")
    assert browser.calls == []
    assert recorder.ended == [("direct", "account", "cookie_rejected")]
    state = chain.states()[0]
    assert (state.usable(clock()), state.last_error) == (True, None)  # no fault of the source


async def test_an_anonymous_only_source_is_left_out_of_an_accounts_attempt() -> None:
    clock, recorder = Clock(), Recorder()
    direct, embed = ScriptedSource(*[NotReady("nothing learned")] * 2), ScriptedSource()
    chain = SourceChain(
        [NamedSource("direct", direct), NamedSource("embed", embed, accounts=False)], BENCH, clock, recorder
    )
    with pytest.raises(NotReady):  # the direct source is the last an account has
        await chain.attempt("cookie")
    assert embed.calls == []
    assert (await chain.attempt()).source == "embed"


async def test_with_no_source_for_accounts_an_account_is_told_so_and_nothing_is_called() -> None:
    embed = ScriptedSource()
    chain = SourceChain([NamedSource("embed", embed, accounts=False)], BENCH, Clock(), Recorder())
    with pytest.raises(AccountsDisabled, match="anonymous ones only") as raised:
        await chain.attempt("cookie")
    assert (raised.value.status, embed.calls) == (403, [])


async def test_an_anonymous_token_from_after_the_first_source_is_reported() -> None:
    clock = Clock()
    direct = ScriptedSource(NotReady("nothing learned"), default=3600.0)
    embed = ScriptedSource()
    chain = SourceChain(
        [NamedSource("direct", direct), NamedSource("embed", embed, accounts=False)], BENCH, clock, Recorder()
    )
    fell_back: list[str] = []
    chain.fell_back = fell_back.append
    await chain.attempt()  # the direct source falls through: the embed source answers
    await chain.attempt()  # the direct source cools down: the embed source answers
    clock.now_ms += 31_000
    await chain.attempt()  # the direct source answers
    assert fell_back == ["embed", "embed"]
