"""An in-memory token source: the service and the HTTP layer tested without a browser.

Shared by the unit tests and the integration tests that target only the HTTP layer (the fuzzer).
"""

from __future__ import annotations

import itertools

from spotify_tokener.domain.clock import Clock, Sleep, real_sleep, wall_clock_ms
from spotify_tokener.domain.errors import TokenError
from spotify_tokener.domain.hashes import METADATA_TYPES, HashSet
from spotify_tokener.domain.token import Kind, Token

Outcome = TokenError | float  # an error to raise, or the lifetime in seconds of the token to return


class ScriptedSource:
    """Answers attempts from a script, then with ``default``; records every call."""

    def __init__(
        self,
        *script: Outcome,
        default: Outcome = 3600.0,
        delay: float = 0.0,
        dead_cookies: frozenset[str] = frozenset(),
        leaks_accounts: bool = False,
        clock: Clock = wall_clock_ms,
        sleep: Sleep = real_sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self.dead_cookies = dead_cookies
        self.leaks_accounts = leaks_accounts
        self.script = list(script)
        self.default = default
        self.delay = delay
        self.calls: list[str | None] = []
        self._serial = itertools.count(1)

    async def attempt(self, sp_dc: str | None = None) -> Token:
        self.calls.append(sp_dc)
        outcome = self.script.pop(0) if self.script else self.default
        if self.delay:
            await self._sleep(self.delay)
        if isinstance(outcome, TokenError):
            raise outcome
        expires = self._clock() + int(outcome * 1000)
        anonymous = (sp_dc is None or sp_dc in self.dead_cookies) and not self.leaks_accounts
        owner = "anon" if sp_dc is None else sp_dc
        return Token(f"BQ-{owner}-{next(self._serial)}", expires, "client", anonymous)


class Unobserved:
    """The service's observer in tests of what it serves rather than what it reports."""

    def attempt_ended(self, kind: Kind, outcome: str, seconds: float, attempt: int) -> None:
        return None


HASHES = HashSet(
    "web-player.0123abcd.js",
    "1.2.60.123.g0123abcd",
    {name: f"{index:064x}" for index, name in enumerate(METADATA_TYPES.values())},
    1_800_000_000,
)


async def scripted_hashes(known: HashSet | None) -> HashSet:
    """The hashes for an app without a web player (``create_app``'s ``hashes``)."""
    return HASHES
