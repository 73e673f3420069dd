"""Assembles one service instance from its settings: the composition root, the only module that knows
every layer (sources, replicas, core, HTTP, metrics) and connects them through the core's ports."""

from __future__ import annotations

from spotify_tokener.core.exits import Egress, ExitPool
from spotify_tokener.core.ports import Coordinator, LocalCoordinator, TokenSource
from spotify_tokener.core.service import TokenService
from spotify_tokener.domain.clock import wall_clock_ms
from spotify_tokener.http.app import App
from spotify_tokener.metrics import Metrics
from spotify_tokener.settings import Settings
from spotify_tokener.sources.browser.manager import BrowserManager
from spotify_tokener.sources.browser.source import BrowserSource


def create_app(
    settings: Settings, source: TokenSource | None = None, browser: BrowserManager | None = None
) -> App:
    """A new, isolated instance.

    ``source`` replaces the browser source (the API without a browser, for tests). ``browser`` lends
    an already running browser to the browser source; the instance then leaves closing it to its owner.
    """
    owned = browser is None and source is None
    metrics = Metrics()
    exits = _exit_pool(settings) if source is None else None  # an injected source takes no proxies
    if source is None:
        browser = browser if browser is not None else BrowserManager(settings)
        browser_source = BrowserSource(settings, browser)
        source = browser_source
        if exits is not None:
            source = Egress(browser_source, exits, metrics.fetches, settings.fetch_timeout, wall_clock_ms)
    service = TokenService(source, settings, coordinator=_coordinator(settings), observer=metrics.fetches)
    closing = browser.close if owned and browser is not None else None
    app = App(service, settings, metrics, browser, closing, exits=exits)
    metrics.watch(app.counts, service, browser, exits)
    return app


def _exit_pool(settings: Settings) -> ExitPool | None:
    """The proxies to leave through, when there are any."""
    proxies = settings.proxies
    if not proxies:
        return None
    return ExitPool(
        proxies,
        settings.exit_bench,
        wall_clock_ms,
        fallback_direct=settings.proxy_fallback_direct,
        remembered=settings.max_accounts + 1,  # every account, and the anonymous token
    )


def _coordinator(settings: Settings) -> Coordinator:
    """Redis when configured (imported only then), else this process alone."""
    if not settings.redis_url.get_secret_value():
        return LocalCoordinator()
    from spotify_tokener.replicas.redis_coordinator import RedisCoordinator  # noqa: PLC0415

    return RedisCoordinator(settings)
