"""Settings sized for unit tests; the in-memory source they drive lives in tests/scripted.py."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from spotify_tokener.http.app import App
from spotify_tokener.settings import Settings


@pytest.fixture
def unit_settings() -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "retry_base_delay": 0.01,
            "retries": 3,
            "force_min_interval": 0,
            "retry_jitter": 0,  # exact schedules; the jitter has tests of its own
            **overrides,
        }
        return Settings.build(**values)

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
        self.gone = asyncio.Event()

    async def client_disconnect(self) -> None:
        await self.gone.wait()

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
