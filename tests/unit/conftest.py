"""An in-memory harvester, so the service's rules are tested without a browser."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from typing import Any

import pytest

from spotify_tokener.app import App
from spotify_tokener.errors import TokenError
from spotify_tokener.settings import Settings
from spotify_tokener.token import Token

Outcome = TokenError | float  # an error to raise, or the lifetime in seconds of the token to return


class ScriptedHarvester:
    """Answers fetches from a script, then with ``default``; records every call."""

    def __init__(
        self,
        *script: Outcome,
        default: Outcome = 3600.0,
        delay: float = 0.0,
        dead_cookies: frozenset[str] = frozenset(),
        leaks_accounts: bool = False,
    ) -> None:
        self.dead_cookies = dead_cookies
        self.leaks_accounts = leaks_accounts
        self.script = list(script)
        self.default = default
        self.delay = delay
        self.calls: list[str | None] = []
        self._serial = itertools.count(1)

    async def fetch(self, sp_dc: str | None = None) -> Token:
        self.calls.append(sp_dc)
        outcome = self.script.pop(0) if self.script else self.default
        if self.delay:
            await asyncio.sleep(self.delay)
        if isinstance(outcome, TokenError):
            raise outcome
        expires = time.time_ns() // 1_000_000 + int(outcome * 1000)
        anonymous = (sp_dc is None or sp_dc in self.dead_cookies) and not self.leaks_accounts
        owner = "anon" if sp_dc is None else sp_dc
        return Token(f"BQ-{owner}-{next(self._serial)}", expires, "client", anonymous)


@pytest.fixture
def unit_settings() -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "retry_base_delay": 0.01,
            "retries": 3,
            "force_min_interval": 0,
            **overrides,
        }
        return Settings(**values)

    return make


class FakeScope:
    def __init__(
        self, path: str, method: str = "GET", query: str = "", headers: dict[str, str] | None = None
    ):
        self.path, self.method, self.query_string = path, method, query
        self.headers = headers or {}


class RecordingProtocol:
    def __init__(self) -> None:
        self.sent: list[tuple[int, list[tuple[str, str]], bytes]] = []

    def response_empty(self, status: int, headers: list[tuple[str, str]], /) -> None:
        self.sent.append((status, headers, b""))

    def response_bytes(self, status: int, headers: list[tuple[str, str]], body: bytes, /) -> None:
        self.sent.append((status, headers, body))

    def response_file(self, status: int, headers: list[tuple[str, str]], file: str, /) -> None:
        self.sent.append((status, headers, file.encode()))


async def served(app: App, scope: FakeScope) -> tuple[int, list[tuple[str, str]], bytes]:
    protocol = RecordingProtocol()
    await app.__rsgi__(scope, protocol)
    return protocol.sent[0]
