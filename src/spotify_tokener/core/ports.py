"""The protocols the core depends on, each implemented at an edge, and their trivial defaults: the
core imports none of the edges' libraries (a contract in pyproject.toml checks it)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from spotify_tokener.domain.proxy import Proxy
from spotify_tokener.domain.request_shape import Sighting
from spotify_tokener.domain.token import Kind, Token

Fetch = Callable[[], Awaitable[Token]]
"""A whole fetch for one identity: attempts at the source, with retries."""

Left = Callable[[], Awaitable[None]]
"""Resolves once a caller has gone (an HTTP client that hung up): its wait for a fetch then ends."""

Wanted = Callable[[Token, int], bool]
"""The core's judgement of a token someone else fetched, given when it was fetched (epoch ms)."""

OUTCOME_OK = "ok"  # a failed attempt reports its error's ``outcome`` (domain/errors.py) instead


class TokenSource(Protocol):
    """Obtains one fresh token per call (one attempt); caching and retrying are the core's business."""

    async def attempt(self, sp_dc: str | None = None) -> Token: ...


class ProxiedSource(Protocol):
    """A token source that can leave through a given proxy (``None``: none), for the proxy pool."""

    async def attempt(self, sp_dc: str | None = None, proxy: Proxy | None = None) -> Token: ...


class Pupil(Protocol):
    """Learns from what the browser source sees as it works (the direct source; the wiring connects
    them, so neither source imports the other)."""

    def teach(self, sighting: Sighting) -> asyncio.Task[None] | None:
        """The page's own token call, after Spotify answered it with a token; the learning it
        starts, if any, for the teacher to wait on a while (without cancelling it)."""

    @property
    def wants_page_strings(self) -> bool:
        """Whether the scripts' text taught nothing, so the page's memory is worth reading."""

    def teach_strings(self, sighting: Sighting, strings: list[str]) -> asyncio.Task[None]:
        """The strings the page held when it made the sighted call; the learning it starts."""


class Coordinator(Protocol):
    """How one replica's fetches relate to other replicas': the seam between the core and Redis."""

    @property
    def available(self) -> bool | None:
        """Whether the shared store answered last time (None: there is none)."""

    async def fetch(self, identity: str, fetch_here: Fetch, wanted: Wanted) -> Token:
        """A token for ``identity``: one shared by another replica that ``wanted`` accepts, else a new one."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class Notes(Protocol):
    """Small records replicas share besides tokens (what the direct source learned); never a cookie.
    Best effort: a store that does not answer reads as having nothing, and a write may be lost."""

    async def read_note(self, name: str) -> bytes | None: ...

    async def write_note(self, name: str, value: bytes) -> None: ...


class StateStore(Protocol):
    """Named JSON documents kept across restarts (``TOKENER_STATE_DIR``); never an account's secret.
    Best effort: ``load`` reads anything wrong as None; ``save`` returns at once, the write follows."""

    def load(self, name: str) -> dict[str, Any] | None: ...

    def save(self, name: str, document: dict[str, Any]) -> None: ...


class NoState:
    def load(self, name: str) -> dict[str, Any] | None:
        return None

    def save(self, name: str, document: dict[str, Any]) -> None:
        return None


NO_STATE = NoState()


class SharedStore(Coordinator, Notes, Protocol): ...


class LocalCoordinator:
    """A single replica: nothing to share, every fetch is made here (the slot's single flight suffices)."""

    available: bool | None = None

    async def read_note(self, name: str) -> bytes | None:
        return None

    async def write_note(self, name: str, value: bytes) -> None:
        return None

    async def fetch(self, identity: str, fetch_here: Fetch, wanted: Wanted) -> Token:
        return await fetch_here()

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None


class FetchObserver(Protocol):
    """Told about every attempt; the metrics implement it, so the core needs no metrics library."""

    def attempt_ended(self, kind: Kind, outcome: str, seconds: float, attempt: int) -> None:
        """One attempt ended: ``attempt`` counts from 1, so anything above 1 was a retry."""


class ProxyObserver(Protocol):
    """Told how each try through a proxy ended (its label, or ``none``); the metrics again."""

    def proxy_ended(self, proxy_label: str, outcome: str) -> None: ...


class SourceObserver(Protocol):
    """Told how each token source's part of an attempt ended; the metrics again."""

    def source_ended(self, source: str, kind: Kind, outcome: str) -> None: ...
