"""The browser source: get a token the way a visitor's browser does, by opening the web player and
catching its token call.

The page computes Spotify's TOTP itself, so nothing here needs to know the secret or its version;
when Spotify rotates them, the page keeps working and so do we.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from contextlib import AsyncExitStack

from playwright.async_api import BrowserContext, Page, Response, Route
from playwright.async_api import Error as PlaywrightError

from spotify_tokener.core.ports import Pupil
from spotify_tokener.domain.clock import wall_clock_ms
from spotify_tokener.domain.errors import BrowserError, PageUnreachable, TokenError, refusal
from spotify_tokener.domain.proxy import Proxy
from spotify_tokener.domain.request_shape import Sighting
from spotify_tokener.domain.token import SP_DC, Token, parse_retry_after, parse_token_response
from spotify_tokener.settings import Settings
from spotify_tokener.sources.browser.filters import TOKEN_HOST, is_token_request, should_block
from spotify_tokener.sources.browser.heap import empty_page_strings, page_strings
from spotify_tokener.sources.browser.manager import BrowserManager

log = logging.getLogger(__name__)

HTTP_ERROR_FLOOR = 400
NET_ERROR = re.compile(r"net::ERR_[A-Z_]+")
SP_DC_DOMAIN = "." + TOKEN_HOST.split(".", 1)[1]


class BrowserSource:
    """A :class:`~spotify_tokener.core.ports.TokenSource`: one fresh browser context per attempt."""

    def __init__(self, settings: Settings, browser: BrowserManager, pupil: Pupil | None) -> None:
        self._settings = settings
        self._browser = browser
        self._pupil = pupil
        self._browsers_own: tuple[int, frozenset[str]] | None = None  # (for which launch, strings)
        self._reading_own = asyncio.Lock()
        self._teaching: asyncio.Task[None] | None = None  # one at a time
        self._holding = AsyncExitStack()  # the teaching's context

    @property
    def teaching(self) -> bool:
        return self._teaching is not None and not self._teaching.done()

    async def close(self) -> None:
        """Before the browser closes: a teaching under way holds a context (closed here even if the
        task was cancelled before it began)."""
        if self._teaching is not None:
            self._teaching.cancel()
            await asyncio.wait([self._teaching])
        await self._holding.aclose()

    async def attempt(self, sp_dc: str | None = None, proxy: Proxy | None = None) -> Token:
        started = time.monotonic()
        async with AsyncExitStack() as stack:
            context = await stack.enter_async_context(self._browser.context(self._settings.user_agent, proxy))
            if sp_dc is not None:
                await _add_sp_dc(context, sp_dc)
            try:
                # The route before the page: a page opened while the route is being set up can
                # miss it and load everything it blocks (measured: some pages loaded their images).
                await context.route("**/*", _filter_route)
                page = await context.new_page()
                response = await self._load_and_catch(page)
                await response.finished()
                body = await response.body()
            except PlaywrightError as error:
                raise self._failure(error, proxy, started) from None
            token = parse_token_response(response.status, response.headers, body, now_ms=wall_clock_ms())
            if self._pupil is None:
                return token
            sighting = Sighting(response.request.url, wall_clock_ms())
            if self.teaching:  # this one's sighting still counts; the page's memory waits its turn
                self._pupil.teach(sighting)
                return token
            self._holding = stack.pop_all()
            teaching = self._teach(self._pupil, sighting, context, page, self._holding)
            self._teaching = asyncio.get_running_loop().create_task(teaching)
            return token

    async def _teach(
        self, pupil: Pupil, sighting: Sighting, context: BrowserContext, page: Page, holding: AsyncExitStack
    ) -> None:
        """After the answer, in a task of its own, the context held open until it ends: a page's huge
        memory must not hold the token."""
        async with holding:
            try:
                await self._teach_within(pupil, sighting, context, page)
            except Exception as error:  # a background task: nobody else would see it; only its type
                log.error("teaching the direct source failed: %s", type(error).__name__)

    async def _teach_within(
        self, pupil: Pupil, sighting: Sighting, context: BrowserContext, page: Page
    ) -> None:
        """Within TOKENER_FETCH_TIMEOUT, relearning and the memory read together."""
        limit = self._settings.fetch_timeout
        deadline = asyncio.get_running_loop().time() + limit
        if (learning := pupil.teach(sighting)) is not None:
            await asyncio.wait([learning], timeout=limit)  # it goes on if time runs out
        if not pupil.wants_page_strings or asyncio.get_running_loop().time() >= deadline:
            return
        started = time.monotonic()
        strings: list[str] = []  # a read too long: as if it held nothing, not read again until new scripts
        try:
            async with asyncio.timeout_at(deadline):
                own = await self._browsers_own_strings()
                strings = await page_strings(context, page, own)
            log.info(
                "read %d strings from the page's memory in %.0f ms, besides the %d an empty page holds",
                len(strings),
                (time.monotonic() - started) * 1000,
                len(own),
            )
        except TimeoutError:
            log.warning("teaching took longer than %.0f s with the page's memory; not for this build", limit)
        pupil.teach_strings(sighting, strings)

    async def _browsers_own_strings(self) -> frozenset[str]:
        """Read once per launch of the browser, in a context of its own: for a moment, one more than the
        attempts' places and the teaching's."""
        async with self._reading_own:
            if self._browsers_own is None or self._browsers_own[0] != self._browser.launches:
                async with self._browser.context(self._settings.user_agent) as context:
                    launch = self._browser.launches  # the context's own launch, if it started one
                    own = await empty_page_strings(context, self._settings.spotify_url)
                if own is None:
                    return frozenset()
                self._browsers_own = (launch, own)
            return self._browsers_own[1]

    async def _load_and_catch(self, page: Page) -> Response:
        async with page.expect_response(lambda r: is_token_request(r.url), timeout=0) as caught:
            document = await page.goto(self._settings.spotify_url, wait_until="commit")
            if document is not None and document.status >= HTTP_ERROR_FLOOR:
                retry_after = parse_retry_after(document.headers.get("retry-after"), wall_clock_ms() / 1000)
                raise refusal(document.status, "the web player page", retry_after)
        return await caught.value

    def _failure(self, error: PlaywrightError, proxy: Proxy | None, started: float) -> TokenError:
        """Spotify's fault, the browser's (crash, close), or that of a proxy that failed meanwhile."""
        message = str(error)
        if network := NET_ERROR.search(message):  # Chromium's own code, such as net::ERR_NAME_NOT_RESOLVED
            failure = f"the Spotify web player could not be loaded ({network.group(0)})"
        elif not self._browser.running or "crash" in message.lower() or "has been closed" in message:
            return BrowserError("the browser crashed or closed during the fetch")
        else:
            failure = "the Spotify web player could not be loaded"
        if proxy is not None and (why := self._browser.proxy_failure(proxy, since=started)) is not None:
            return PageUnreachable(f"the proxy {proxy.label} {why}")
        return PageUnreachable(failure)


async def _add_sp_dc(context: BrowserContext, sp_dc: str) -> None:
    await context.add_cookies(
        [
            {
                "name": SP_DC,
                "value": sp_dc,
                "domain": SP_DC_DOMAIN,
                "path": "/",
                "secure": True,
                "httpOnly": True,
                "sameSite": "Lax",
            }
        ]
    )


async def _filter_route(route: Route) -> None:
    request = route.request
    with contextlib.suppress(PlaywrightError):
        if should_block(request.resource_type, request.url):
            await route.abort("blockedbyclient")
        else:
            await route.fallback()
