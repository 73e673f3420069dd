"""Assembles one service instance from its settings: the composition root, the only module that knows
every layer (sources, replicas, core, HTTP, metrics) and connects them through the core's ports."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from spotify_tokener.core.chain import NamedSource, SourceChain
from spotify_tokener.core.ports import (
    NO_STATE,
    LocalCoordinator,
    Notes,
    ProxiedSource,
    SharedStore,
    StateStore,
    TokenSource,
)
from spotify_tokener.core.proxies import ProxyPool, ThroughProxies
from spotify_tokener.core.service import TokenService
from spotify_tokener.domain.clock import wall_clock_ms
from spotify_tokener.http.app import App
from spotify_tokener.metrics import FetchMetrics, Metrics
from spotify_tokener.settings import Settings
from spotify_tokener.sources.browser.manager import BrowserManager
from spotify_tokener.sources.browser.source import BrowserSource
from spotify_tokener.state import StateFolder

if TYPE_CHECKING:
    from spotify_tokener.sources.direct.source import DirectSource

Closing = Callable[[], Awaitable[None]]


@dataclass
class Sources:
    """What the token sources are made of, for the app to show and to close."""

    chain: SourceChain
    direct: DirectSource | None
    browser: BrowserManager | None
    proxies: ProxyPool | None
    closers: list[Closing]

    async def close(self) -> None:
        """Each one, whatever the others do: a source that fails to close must not keep Chromium up."""
        async with contextlib.AsyncExitStack() as stack:
            for close in self.closers:
                stack.push_async_callback(close)


def create_app(
    settings: Settings, source: TokenSource | None = None, browser: BrowserManager | None = None
) -> App:
    """A new, isolated instance.

    ``source`` replaces every configured source (the API without a browser, for tests). ``browser``
    lends an already running browser to the browser source; the instance then leaves closing it to
    its owner.
    """
    metrics = Metrics()
    store = _shared_store(settings)
    folder = StateFolder(settings.state_dir) if settings.state_dir is not None else None
    kept: StateStore = folder or NO_STATE
    if source is not None:
        chain = SourceChain(
            [NamedSource("injected", source)], settings.source_cooldown_rule, wall_clock_ms, metrics.fetches
        )
        sources = Sources(chain, None, browser, None, [])
    else:
        sources = _sources(settings, metrics.fetches, browser, store, kept)
    if folder is not None:
        sources.closers.insert(0, folder.close)  # closed last (a stack): what they learned is written
    # With Redis, the token replicas share is Redis's (it outlives a restart): the folder keeps none.
    kept_token = NO_STATE if settings.redis_url.get_secret_value() else kept
    service = TokenService(
        sources.chain, settings, coordinator=store, observer=metrics.fetches, kept=kept_token
    )
    app = App(
        service,
        settings,
        metrics,
        sources.browser,
        sources.close,
        proxies=sources.proxies,
        sources=sources.chain,
        learner=sources.direct.learner if sources.direct else None,
    )
    metrics.watch(app.counts, service, sources.browser, sources.proxies, sources.chain)
    return app


def _sources(
    settings: Settings, observer: FetchMetrics, lent: BrowserManager | None, notes: Notes, kept: StateStore
) -> Sources:
    """The configured sources in their order, each leaving through the proxies when there are any."""
    names = settings.source_names
    closers: list[Closing] = []
    direct = browser = None
    built: dict[str, ProxiedSource] = {}
    if "direct" in names:
        direct = _direct_source(settings, notes, kept)
        closers.append(direct.close)
        built["direct"] = direct
    if "browser" in names:
        browser = lent if lent is not None else BrowserManager(settings)
        if lent is None:
            closers.append(browser.close)
        pupil = direct.learner if direct is not None else None
        built["browser"] = BrowserSource(settings, browser, pupil=pupil)
    proxies = _proxy_pool(settings)
    timeouts = settings.source_timeouts
    named = [NamedSource(name, _through(proxies, built[name], timeouts[name], observer)) for name in names]
    chain = SourceChain(named, settings.source_cooldown_rule, wall_clock_ms, observer)
    if direct is not None:
        direct.learner.on_learned = partial(chain.restore, "direct")
    return Sources(chain, direct, browser, proxies, closers)


def _direct_source(settings: Settings, notes: Notes, kept: StateStore) -> DirectSource:
    """Imported only when configured: curl_cffi's library is large (BENCHMARKS.md)."""
    from spotify_tokener.sources.direct.client import Client  # noqa: PLC0415
    from spotify_tokener.sources.direct.source import DirectSource  # noqa: PLC0415

    client = Client(
        settings.connect_to_rules, settings.ca_file, settings.direct_timeout, settings.proxy_connect_timeout
    )
    return DirectSource(settings, client, pinned=settings.pinned_secret, notes=notes, kept=kept)


def _through(
    proxies: ProxyPool | None, source: ProxiedSource, timeout_s: float, observer: FetchMetrics
) -> TokenSource:
    """``source`` sending its attempts out through the proxies, if there are any."""
    if proxies is None:
        return source
    return ThroughProxies(source, proxies, observer, timeout_s, wall_clock_ms)


def _proxy_pool(settings: Settings) -> ProxyPool | None:
    """The proxies to leave through, when there are any."""
    proxies = settings.proxies
    if not proxies:
        return None
    return ProxyPool(
        proxies,
        settings.proxy_cooldown_rule,
        wall_clock_ms,
        optional=settings.proxy_optional,
        remembered=settings.remembered_identities,
    )


def _shared_store(settings: Settings) -> SharedStore:
    """Redis when configured (imported only then), else this process alone."""
    if not settings.redis_url.get_secret_value():
        return LocalCoordinator()
    from spotify_tokener.replicas.redis_coordinator import RedisCoordinator  # noqa: PLC0415

    return RedisCoordinator(settings)
