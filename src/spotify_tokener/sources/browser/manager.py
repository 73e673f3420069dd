"""One Chromium, launched on demand and closed when idle, shared by short-lived contexts.

Launching is slow and an idle Chromium is large (BENCHMARKS.md), so the browser lives only while
attempts happen: the first attempt starts the Playwright driver and Chromium, the last one
arms an idle timer, and the timer closes both. A crashed browser or driver is noticed on the next
attempt and replaced. The manager exists from the start, for ``status`` to read; Playwright, which
once imported stays in the process's memory, only from the first attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import TYPE_CHECKING

from spotify_tokener.domain.errors import BrowserError, BrowserMissing
from spotify_tokener.domain.proxy import Proxy
from spotify_tokener.settings import Settings
from spotify_tokener.sources.browser.chromium import (
    chromium_args,
    enable_node_compile_cache,
    find_executable,
    sandbox_refused,
    unavailable,
    wants_sandbox,
)
from spotify_tokener.sources.user_agent import agent_for

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, Playwright, ProxySettings

    from spotify_tokener.sources.browser.relay import Relay

log = logging.getLogger(__name__)


class BrowserManager:
    """Also what ``/health``, ``status`` and the metrics show of the browser, from the start."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.unavailable = unavailable(settings.browser_path)  # why it cannot run at all, said at start
        self._args = chromium_args(settings.browser_args, settings.connect_to_rules)
        self._home: Path | None = None  # Chromium's own home when TOKENER_CA_FILE is set
        self._relays: dict[Proxy, Relay] = {}
        self._sandbox = wants_sandbox(settings.browser_sandbox, os.geteuid())
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._launch_lock = asyncio.Lock()
        self._active = 0
        self._idle_task: asyncio.Task[None] | None = None
        self._launching: asyncio.Task[Browser] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._closed = False
        self.launches = 0
        self.executable: Path | None = None

    @property
    def running(self) -> bool:
        return self._browser is not None and self._browser.is_connected()

    @property
    def version(self) -> str | None:
        return self._browser.version if self._browser is not None and self.running else None

    @contextlib.asynccontextmanager
    async def context(
        self, user_agent: str = "", proxy: Proxy | None = None
    ) -> AsyncIterator[BrowserContext]:
        """A fresh, isolated context on the shared browser, leaving through ``proxy`` if given; an empty
        ``user_agent`` means a desktop Chrome one of the browser's own version.

        Closing it happens in the background: an attempt that timed out must not also wait for the
        cleanup, and an attempt that succeeded has its token already.
        """
        self._active += 1
        self._cancel_idle_timer()
        try:
            server = await self._relay_server(proxy) if proxy is not None else None
            context = await self._open_context(user_agent, server)
            try:
                yield context
            finally:
                closing = asyncio.get_running_loop().create_task(self._quietly(context.close()))
                self._background.add(closing)
                closing.add_done_callback(self._background.discard)
        finally:
            self._active -= 1
            if self._active == 0:  # every entry cancelled the timer: none is armed now
                self._idle_task = asyncio.get_running_loop().create_task(self._close_when_idle())

    async def close(self) -> None:
        """Waits for a launch under way so that its processes are not orphaned."""
        self._closed = True
        self._cancel_idle_timer()
        if self._launching is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._launching), self._settings.fetch_timeout)
        if self._background:
            await asyncio.wait(self._background, timeout=self._settings.shutdown_timeout)
        async with self._launch_lock:
            await self._teardown()
        for relay in self._relays.values():
            await relay.close()
        if self._home is not None:
            shutil.rmtree(self._home, ignore_errors=True)
            self._home = None

    def proxy_failure(self, proxy: Proxy, since: float) -> str | None:
        relay = self._relays.get(proxy)
        return relay.failure_since(since) if relay is not None else None

    async def _relay_server(self, proxy: Proxy) -> str:
        relay = self._relays.get(proxy)
        if relay is None:
            # Imported with the first proxy: python-socks and its kin cost idle memory (BENCHMARKS.md).
            from spotify_tokener.sources.browser.relay import Relay, spotify_destinations  # noqa: PLC0415
            from spotify_tokener.sources.trust import tls_context  # noqa: PLC0415

            settings = self._settings
            allowed = spotify_destinations(settings.spotify_url, settings.connect_to_rules)
            tls = tls_context(settings.ca_file)
            relay = Relay(proxy, settings.connect_to_rules, allowed, tls, settings.proxy_connect_timeout)
            self._relays[proxy] = relay
        return await relay.address()

    async def _open_context(self, user_agent: str, server: str | None, retry: bool = True) -> BrowserContext:
        """A context on the running browser, relaunching it once if it turns out to be dead.

        Playwright learns of a killed Chromium a moment after the attempt it broke has failed, so the
        next attempt can find it still "connected"; that attempt gets a new browser, not a second error.
        """
        from playwright.async_api import Error as PlaywrightError  # noqa: PLC0415

        browser = await self._ensure_browser()
        agent = agent_for(user_agent, browser.version)
        proxy: ProxySettings | None = {"server": server} if server else None
        try:
            return await browser.new_context(user_agent=agent, service_workers="block", proxy=proxy)
        except PlaywrightError as error:
            async with self._launch_lock:
                if self._browser is browser:  # not replaced by another attempt meanwhile
                    log.warning("dropping the browser: could not open a context in it")
                    await self._teardown()
            if not retry:
                raise BrowserError("the browser failed to open a page") from error
        return await self._open_context(user_agent, server, retry=False)

    async def _ensure_browser(self) -> Browser:
        """The launch runs as its own task: a waiter that is cancelled (a client leaving, a shutdown)
        must not interrupt it halfway, or the driver process it spawned would never be closed."""
        async with self._launch_lock:
            if self._browser is not None and self._browser.is_connected():
                return self._browser
            if self._launching is None:
                if self._browser is not None or self._playwright is not None:
                    log.warning("browser is gone (crashed or killed); relaunching")
                    await self._teardown()
                self._launching = asyncio.get_running_loop().create_task(self._launch())
                # A launch nobody waits for any more must not warn that its error went unseen.
                self._launching.add_done_callback(lambda task: task.cancelled() or task.exception())
            launching = self._launching
        return await asyncio.shield(launching)

    async def _launch(self) -> Browser:
        from playwright.async_api import async_playwright  # noqa: PLC0415

        enable_node_compile_cache()
        try:
            if self._settings.ca_file is not None and self._home is None:
                # Before the timeout starts, so that a timeout cannot orphan the thread making it.
                # Imported here: cryptography costs idle memory (BENCHMARKS.md).
                from spotify_tokener.sources.browser.trust_store import home_trusting  # noqa: PLC0415

                self._home = await asyncio.to_thread(home_trusting, self._settings.ca_file)
            async with asyncio.timeout(self._settings.fetch_timeout):  # driver and Chromium together
                self._playwright = await async_playwright().start()
                self.executable = find_executable(
                    self._settings.browser_path, self._playwright.chromium.executable_path
                )
                browser = self._browser = await self._start_chromium(self._playwright, self.executable)
        except (BrowserMissing, asyncio.CancelledError):  # cancelled: the loop ends; leave no driver
            await self._teardown()
            raise
        except Exception as error:  # the driver can fail with anything: a missing library, a bad binary
            await self._teardown()
            log.error("browser failed to start: %s: %s", type(error).__name__, _first_line(error))
            raise BrowserError("the browser failed to start") from error
        finally:
            self._launching = None
        self.launches += 1
        if self._closed:  # the service stopped during the launch; do not leave it running
            await self._teardown()
            raise BrowserError("the browser was closed while starting")
        log.info("browser started: Chromium %s (%s)", browser.version, self.executable)
        return browser

    async def _start_chromium(self, playwright: Playwright, executable: Path) -> Browser:
        """Sandboxed when wanted; in ``auto`` mode, without it (said once) where it cannot start."""
        from playwright.async_api import Error as PlaywrightError  # noqa: PLC0415

        try:
            return await self._launch_chromium(playwright, executable)
        except PlaywrightError as error:
            auto = self._settings.browser_sandbox == "auto"
            if not (self._sandbox and auto and sandbox_refused(str(error))):
                raise
        log.warning(
            "Chromium cannot start its sandbox here; running it without. To keep it, allow user "
            "namespaces (in Docker: a seccomp profile that permits them); "
            "TOKENER_BROWSER_SANDBOX=off skips the attempt"
        )
        self._sandbox = False
        return await self._launch_chromium(playwright, executable)

    async def _launch_chromium(self, playwright: Playwright, executable: Path) -> Browser:
        return await playwright.chromium.launch(
            executable_path=executable,
            args=self._args,
            headless=True,
            chromium_sandbox=self._sandbox,
            timeout=self._settings.fetch_timeout * 1000,
            env={**os.environ, "HOME": str(self._home)} if self._home is not None else None,
        )

    async def _teardown(self) -> None:
        """Shielded: once the handles are taken, a cancelled caller must not leave the processes open."""
        browser, playwright = self._browser, self._playwright
        self._browser, self._playwright = None, None
        if browser is not None or playwright is not None:
            await asyncio.shield(self._close_handles(browser, playwright))

    async def _close_handles(self, browser: Browser | None, playwright: Playwright | None) -> None:
        if browser is not None:
            await self._quietly(browser.close())
        if playwright is not None:
            await self._quietly(playwright.stop())

    async def _quietly(self, closing: Awaitable[None]) -> None:
        """What is closed may be dead already."""
        from playwright.async_api import Error as PlaywrightError  # noqa: PLC0415

        with contextlib.suppress(PlaywrightError, TimeoutError, OSError):
            async with asyncio.timeout(self._settings.shutdown_timeout):
                await closing

    def _cancel_idle_timer(self) -> None:
        if self._idle_task is not None and not self._idle_task.done():
            self._idle_task.cancel()
        self._idle_task = None

    async def _close_when_idle(self) -> None:
        await asyncio.sleep(self._settings.browser_idle)
        self._idle_task = None  # past this point a new attempt must not cancel a half-done teardown
        async with self._launch_lock:
            if self._active == 0 and (self._browser is not None or self._playwright is not None):
                await self._teardown()
                log.info("browser closed after %.0f s idle", self._settings.browser_idle)
            if self._active == 0:  # no await since the check: no attempt can be holding an address
                for relay in self._relays.values():
                    relay.shut()  # with the browser: nothing else may use them while it is away


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
