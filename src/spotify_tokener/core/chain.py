"""Several token sources tried in order within one attempt: the light one first, the browser behind it.

A failure whose ``FAILURES`` row says ``next_source`` hands the attempt on at once, unseen by the client,
and cools the source down for a doubling while; the last is never skipped, so the service answers at
worst as that source alone would. A source of anonymous tokens only (the embed page's) sits out an
account's attempt.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from spotify_tokener.core.ports import OUTCOME_OK, SourceObserver, TokenSource
from spotify_tokener.core.standing import Standing
from spotify_tokener.domain.backoff import Backoff
from spotify_tokener.domain.clock import Clock
from spotify_tokener.domain.errors import (
    AccountsDisabled,
    CookieRejected,
    InternalError,
    TokenError,
)
from spotify_tokener.domain.token import Token, kind_of

log = logging.getLogger(__name__)

NO_ACCOUNT_SOURCE = "no configured token source makes account tokens (embed makes anonymous ones only)"


@dataclass(slots=True, kw_only=True)
class SourceState(Standing):
    """What the chain knows of one source (its failures: fall-throughs); ``status`` shows it."""

    name: str


@dataclass(frozen=True, slots=True)
class NamedSource:
    name: str
    source: TokenSource
    accounts: bool = True  # whether it makes an account's token (the embed page's are anonymous)


class SourceChain:
    """A :class:`TokenSource` made of others; the token it returns names the one that obtained it."""

    def __init__(
        self, sources: Sequence[NamedSource], cooldown: Backoff, clock: Clock, observer: SourceObserver
    ) -> None:
        self.sources = tuple(sources)  # in their order
        self._states = {named.name: SourceState(name=named.name) for named in sources}
        self._cooldown = cooldown
        self._clock = clock
        self._observer = observer
        self.fell_back: Callable[[str], None] = lambda name: None
        """Told which source answered an anonymous attempt that the first one did not (the wiring
        starts a teaching of the direct source then)."""

    async def attempt(self, sp_dc: str | None = None) -> Token:
        kind = kind_of(sp_dc)
        sources = tuple(named for named in self.sources if named.accounts) if sp_dc else self.sources
        if not sources:
            raise AccountsDisabled(NO_ACCOUNT_SOURCE)
        for named in sources:
            state, last = self._states[named.name], named is sources[-1]
            if not last and not state.usable(self._clock()):
                continue
            try:
                token = await named.source.attempt(sp_dc)
            except Exception as error:
                if last and not isinstance(error, TokenError):
                    raise  # the fetcher reports it; a bug in one before must not cost the client its token
                failure = error if isinstance(error, TokenError) else self._crashed(named.name, error)
                self._observer.source_ended(named.name, kind, failure.outcome)
                if not isinstance(failure, CookieRejected):  # the cookie's fault, not the source's
                    state.last_error, state.last_failure_ms = str(failure), self._clock()
                if last or not failure.failure.next_source:
                    raise
                self._cool_down(state, failure)
                continue
            if sp_dc and token.is_anonymous and not last:
                # A dead cookie, or a call this source got wrong for accounts: only the last can say.
                self._observer.source_ended(named.name, kind, CookieRejected.outcome)
                continue
            state.failures, state.retry_at_ms = 0, 0
            state.last_success_ms = self._clock()
            self._observer.source_ended(named.name, kind, OUTCOME_OK)
            if named is not sources[0] and token.is_anonymous:
                self.fell_back(named.name)
            return dataclasses.replace(token, source=named.name)
        raise AssertionError("the last source returns or raises")  # pragma: no cover

    def restore(self, name: str) -> None:
        """``name`` learned what it lacked: its cool-down ends now, not when its time is up."""
        state = self._states[name]
        if state.failures or state.retry_at_ms:
            log.info("token source %s is back", name)
        state.failures, state.retry_at_ms = 0, 0

    def states(self) -> list[SourceState]:
        return list(self._states.values())

    @staticmethod
    def _crashed(name: str, error: Exception) -> InternalError:
        log.error("token source %s crashed: %s", name, type(error).__name__)
        return InternalError(f"the {name} source crashed")

    def _cool_down(self, state: SourceState, error: TokenError) -> None:
        state.failures += 1
        seconds = self._cooldown.cooldown_s(state.failures, None)
        state.retry_at_ms = self._clock() + round(seconds * 1000)
        log.warning(
            "token source %s cools down for %.0f s, the next one answers: %s", state.name, seconds, error
        )
