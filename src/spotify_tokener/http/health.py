"""``GET /health``: liveness, uptime, and the memory of the service and of the browser it spawned."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Protocol

import psutil

from spotify_tokener import __version__
from spotify_tokener.domain.clock import wall_clock_ms
from spotify_tokener.http.schemas import BrowserFields, HealthBody, RedisFields


class BrowserInfo(Protocol):
    """What /health and the metrics show of the browser source, without depending on it."""

    @property
    def running(self) -> bool: ...
    @property
    def launches(self) -> int: ...
    @property
    def executable(self) -> Path | None: ...
    @property
    def unavailable(self) -> str | None:
        """Why the browser source cannot run here (no Playwright, no Chromium); None when it can."""


def memory_rss() -> tuple[int, int]:
    """(own RSS, RSS of all descendants) in bytes; vanished children count as zero."""
    me = psutil.Process()
    children = 0
    for child in me.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            children += child.memory_info().rss
    return me.memory_info().rss, children


def browser_fields(browser: BrowserInfo | None) -> BrowserFields:
    return {
        "running": browser is not None and browser.running,
        "launches": browser.launches if browser is not None else 0,
        "executable": str(browser.executable) if browser and browser.executable else None,
        "unavailable": browser.unavailable if browser is not None else None,
    }


def health_body(uptime_s: float, browser: BrowserInfo | None, redis_available: bool | None) -> HealthBody:
    own, children = memory_rss()
    redis: RedisFields | None = None if redis_available is None else {"available": redis_available}
    return {
        "status": "healthy",
        "version": __version__,
        "uptime": round(uptime_s, 3),
        "memory": {"rss": own, "browserRss": children, "totalRss": own + children},
        "browser": browser_fields(browser),
        "redis": redis,
        "proxies": None,
        "timestamp": wall_clock_ms(),
    }
