"""The one reader of the web player's page and scripts, for the secret's learning and the hashes.

Whoever answers in Spotify's place may send bodies of any size, and text built to be slow to parse.
Every body is cut off as it streams, and every parse runs in one worker thread: neither memory nor the
event loop that serves cached tokens is at the upstream's mercy.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, TypeVar
from urllib.parse import urlsplit

from spotify_tokener.domain.bundle import script_urls
from spotify_tokener.domain.errors import UpstreamError, refusal
from spotify_tokener.domain.hashes import (
    HashSet,
    app_version,
    bundle_name,
    bundle_url,
    chunk_urls,
    operations_in,
)
from spotify_tokener.domain.proxy import Proxy
from spotify_tokener.domain.token import HTTP_OK, parse_retry_after
from spotify_tokener.settings import Settings
from spotify_tokener.sources.http_client import Budget, Client, Reply

HTTP_NOT_FOUND = 404
MAX_SCRIPTS = 16
SCRIPT_HOSTS = ("spotify.com", "spotifycdn.com")
"""Only Spotify's own scripts are read: a page may also load third parties'."""
SCRIPT_MAX = 10 << 20
LEARNING_MAX = 32 << 20
SCRIPT = {
    "Accept": "*/*",
    "Sec-Fetch-Dest": "script",
    "Sec-Fetch-Mode": "no-cors",
    "Sec-Fetch-Site": "cross-site",
}
"""A script tag's load from the CDN, another site than the page's."""
API_CALL = {
    "Accept": "application/json",
    "Sec-Fetch-Dest": "empty",
    "Sec-Fetch-Mode": "cors",
    "Sec-Fetch-Site": "same-origin",
}
"""The page's fetch() of its own API (the server time, the token), as Chrome marks it."""

T = TypeVar("T")
_PARSER = ThreadPoolExecutor(1, "tokener-parse")


@dataclass(frozen=True, slots=True)
class Page:
    cookies: dict[str, str]
    scripts: tuple[str, ...]
    app_version: str | None = None


@dataclass(frozen=True, slots=True)
class PageText:
    urls: tuple[str, ...]
    scripts: list[bytes]


class WebPlayer:
    """Asks as the page's own loads do, so that it looks like a visitor's browser."""

    def __init__(self, settings: Settings) -> None:
        self.client, self.page_url = Client(settings, settings.direct_timeout), settings.spotify_url
        self.on_page: Callable[[Page], None] = lambda page: None  # every visit, whatever its reason
        self._text = PageText((), [])  # the last build's, kept while the page names the same

    async def page(self, proxy: Proxy | None, cookies: Mapping[str, str] | None = None) -> Page:
        headers = {"User-Agent": self.client.user_agent}  # a navigation: the impersonated browser's own
        reply = await self.client.get(self.page_url, cookies=cookies or {}, headers=headers, proxy=proxy)
        page = await parsed(parse_page, reply, self.page_url)
        self.on_page(page)
        return page

    async def text(self, page: Page, proxy: Proxy | None) -> PageText:
        """Its scripts, read whole once per build: a build's scripts never change under their URLs."""
        if page.scripts == self._text.urls:
            return self._text
        budget = Budget(LEARNING_MAX)
        replies = [await self.script(url, proxy, budget) for url in page.scripts]
        text = PageText(page.scripts, [reply.body for reply in replies if reply.status == HTTP_OK])
        if len(text.scripts) == len(page.scripts):  # kept only whole: a failed load is tried again
            self._text = text
        return text

    async def script(self, url: str, proxy: Proxy | None, budget: Budget) -> Reply:
        return await self.client.get(
            url, cookies={}, headers=self.headers(SCRIPT), proxy=proxy, limit=SCRIPT_MAX, budget=budget
        )

    async def api(self, url: str, cookies: Mapping[str, str], proxy: Proxy | None) -> Reply:
        return await self.client.get(url, cookies=cookies, headers=self.headers(API_CALL), proxy=proxy)

    def headers(self, kind: Mapping[str, str]) -> dict[str, str]:
        return {"User-Agent": self.client.user_agent, "Referer": self.page_url, **kind}

    async def hashes(self, known: HashSet | None, proxy: Proxy | None, now_s: int) -> HashSet:
        """The set the page shows now: ``known`` again, dated now, while it names the same bundle."""
        page = await self.page(proxy)
        url = bundle_url(page.scripts)
        if url is None:
            raise UpstreamError("the web player page names no web-player bundle")
        if known is not None and known.bundle == bundle_name(url):
            return replace(known, app_version=page.app_version or known.app_version, updated_at=now_s)
        budget = Budget(LEARNING_MAX)
        main = await self.script(url, proxy, budget)
        if main.status != HTTP_OK:
            raise refusal(main.status, "the web player's bundle")
        scripts = [main.body]
        for chunk in await parsed(lambda: chunk_urls(main.body.decode("utf-8", "replace"), url)):
            reply = await self.script(chunk, proxy, budget)
            if reply.status == HTTP_OK:
                scripts.append(reply.body)
            elif reply.status != HTTP_NOT_FOUND:  # not there: a map read wrong, holding nothing
                raise refusal(reply.status, "a script of the web player")
        operations = await parsed(operations_in, scripts)
        if not operations:
            raise UpstreamError("no persisted-query hash found in the web player's scripts")
        return HashSet(bundle_name(url), page.app_version, operations, now_s)


def parse_page(reply: Reply, page_url: str) -> Page:
    if reply.status != HTTP_OK:
        retry_after = parse_retry_after(reply.headers.get("retry-after"), time.time())
        raise refusal(reply.status, "the web player page", retry_after)
    html = reply.body.decode("utf-8", "replace")
    scripts = tuple(url for url in script_urls(html, page_url) if _spotifys(url))[:MAX_SCRIPTS]
    return Page(dict(reply.cookies), scripts, app_version(html))


def _spotifys(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return any(host == domain or host.endswith("." + domain) for domain in SCRIPT_HOSTS)


async def parsed(work: Callable[..., T], *args: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(_PARSER, work, *args)
