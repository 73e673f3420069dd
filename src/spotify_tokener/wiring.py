"""Assembles one service instance from its settings: the composition root, the only module that knows
every layer (sources, replicas, core, HTTP, metrics) and connects them through the core's ports."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from spotify_tokener.core.chain import NamedSource, SourceChain
from spotify_tokener.core.hashes import HashKeeper, Learn
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
from spotify_tokener.core.service import CoreConfig, TokenService
from spotify_tokener.core.teaching import Teaching
from spotify_tokener.domain.clock import wall_clock_ms
from spotify_tokener.domain.errors import FetchTimeout, UpstreamError
from spotify_tokener.domain.hashes import HashSet
from spotify_tokener.domain.token import ANONYMOUS, Token
from spotify_tokener.http.app import App
from spotify_tokener.http.status import Shown
from spotify_tokener.metrics import FetchMetrics, Metrics, StateCollector
from spotify_tokener.settings import Settings
from spotify_tokener.sources.browser.lazy import LazyBrowser
from spotify_tokener.sources.browser.manager import BrowserManager
from spotify_tokener.state import StateFolder

if TYPE_CHECKING:
    from spotify_tokener.sources.direct.reader import WebPlayer
    from spotify_tokener.sources.direct.source import DirectSource

log = logging.getLogger(__name__)

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
    settings: Settings,
    source: TokenSource | None = None,
    browser: BrowserManager | None = None,
    hashes: Learn | None = None,
) -> App:
    """A new, isolated instance.

    ``source`` replaces every configured source (the API without a browser, for tests), and
    ``hashes`` the reading of the hashes (with ``source``, none unless given). ``browser`` lends an
    already running browser to the browser source; the instance then leaves closing it to its owner.
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
        hashes = hashes or _no_web_player
    else:
        sources = _sources(settings, metrics.fetches, browser, store, kept)
    if folder is not None:
        sources.closers.insert(0, folder.close)  # closed last (a stack): what they learned is written
    # With Redis, the token replicas share is Redis's (it outlives a restart): the folder keeps none.
    kept_token = NO_STATE if settings.redis_url.get_secret_value() else kept
    service = TokenService(
        sources.chain, core_config(settings), coordinator=store, observer=metrics.fetches, kept=kept_token
    )
    keeper = _hash_keeper(settings, sources, store, kept, hashes)
    learner = sources.direct.learner if sources.direct else None
    shown = Shown(service, sources.chain, sources.proxies, learner, sources.browser)
    app = App(shown, settings, metrics, keeper, sources.close)
    metrics.registry.register(StateCollector(app))
    return app


def _hash_keeper(
    settings: Settings, sources: Sources, notes: Notes, kept: StateStore, learn: Learn | None
) -> HashKeeper:
    """The hashes, read by the direct source's reader (with the browser alone, by one made at the
    first need: curl_cffi is imported only then); the direct source's page visits show deploys."""
    web = [sources.direct.web] if sources.direct else []

    async def read(known: HashSet | None) -> HashSet:
        if not web:
            web.append(_web_player(settings, sources.closers))
        proxy = next(iter(sources.proxies.order(ANONYMOUS)), None) if sources.proxies else None
        return await web[0].hashes(known, proxy, wall_clock_ms() // 1000)

    keeper = HashKeeper(
        learn or read,
        notes=notes,
        state=kept,
        clock=wall_clock_ms,
        min_interval_s=settings.hashes_min_interval,
        max_age_s=settings.hashes_max_age,
    )
    if sources.direct is not None:
        sources.direct.web.on_page = lambda page: keeper.seen(page.scripts)
    sources.closers.append(keeper.close)
    return keeper


async def _no_web_player(known: HashSet | None) -> HashSet:
    raise UpstreamError("this instance reads no web player")


def _web_player(settings: Settings, closers: list[Closing]) -> WebPlayer:
    """Imported only when needed, as each browserless source is: curl_cffi's library is large."""
    from spotify_tokener.sources.direct.reader import WebPlayer  # noqa: PLC0415

    web = WebPlayer(settings)
    closers.append(web.client.close)
    return web


def standalone_sources(settings: Settings) -> tuple[Sources, WebPlayer]:
    """The configured sources as the service builds them, with the page's reader, sharing and keeping
    nothing (no Redis, no state folder): what ``check`` tries beside a running service."""
    sources = _sources(settings, Metrics().fetches, None, LocalCoordinator(), NO_STATE)
    return sources, sources.direct.web if sources.direct else _web_player(settings, sources.closers)


def core_config(settings: Settings) -> CoreConfig:
    return CoreConfig(
        **{field.name: getattr(settings, field.name) for field in dataclasses.fields(CoreConfig)}
    )


def _sources(
    settings: Settings, observer: FetchMetrics, lent: BrowserManager | None, notes: Notes, kept: StateStore
) -> Sources:
    """The configured sources in their order, each leaving through the proxies when there are any;
    the browser left out where it cannot run (said once), unless nothing else is configured."""
    names = settings.source_names
    direct = embed = browser = lazy = None
    built: dict[str, ProxiedSource] = {}
    if "direct" in names:
        from spotify_tokener.sources.direct.source import DirectSource  # noqa: PLC0415

        built["direct"] = direct = DirectSource(settings, notes, kept)
    if "embed" in names:
        from spotify_tokener.sources.embed.source import EmbedSource  # noqa: PLC0415

        built["embed"] = embed = EmbedSource(settings)
    if "browser" in names:
        browser = lent or BrowserManager(settings)
        built["browser"] = lazy = LazyBrowser(settings, browser, direct.learner if direct else None)
        if browser.unavailable is not None and len(names) > 1:
            names = tuple(name for name in names if name != "browser")
            log.warning(
                "the browser source is unavailable: %s; serving from %s",
                browser.unavailable,
                ", ".join(names),
            )
    owned = None if lent else browser  # a lent browser is its owner's to close
    # Closed as a stack: the browser source, whose teaching holds a context, before the browser.
    closers: list[Closing] = [one.close for one in (direct, embed, owned, lazy) if one is not None]
    proxies = _proxy_pool(settings)
    timeouts = settings.source_timeouts
    named = {
        name: NamedSource(name, _through(proxies, built[name], timeouts[name], observer), name != "embed")
        for name in names
    }
    chain = SourceChain(list(named.values()), settings.source_cooldown_rule, wall_clock_ms, observer)
    if direct is not None:
        direct.learner.on_learned = partial(chain.restore, "direct")
        if "browser" in named and lazy is not None:
            pupil, teacher = direct.learner, lazy

            def wanted() -> bool:
                """Only while the direct source could learn, and no teaching runs behind an answer."""
                return pupil.wants_teacher and not teacher.teaching

            teaching = Teaching(named["browser"].source, wanted, observer)
            chain.fell_back = teaching.offer
            closers.append(teaching.close)  # closed first (a stack): before the browser under it
    return Sources(chain, direct, browser, proxies, closers)


def _through(
    proxies: ProxyPool | None, source: ProxiedSource, timeout_s: float, observer: FetchMetrics
) -> TokenSource:
    if proxies is None:
        return _Timed(source, timeout_s)
    return ThroughProxies(source, proxies, observer, timeout_s, wall_clock_ms)


@dataclass(frozen=True, slots=True)
class _Timed:
    source: ProxiedSource
    timeout_s: float

    async def attempt(self, sp_dc: str | None = None) -> Token:
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self.source.attempt(sp_dc)
        except TimeoutError:
            raise FetchTimeout.after(self.timeout_s) from None


def _proxy_pool(settings: Settings) -> ProxyPool | None:
    if not settings.proxies:
        return None
    return ProxyPool(
        settings.proxies,
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
