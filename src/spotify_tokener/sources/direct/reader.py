"""The one reader of the web player's page and scripts, for the secret's learning and the hashes.

Whoever answers in Spotify's place may send bodies of any size, and text built to be slow to parse.
Every body is cut off as it streams, and every parse runs in one worker thread: neither memory nor the
event loop that serves cached tokens is at the upstream's mercy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

from spotify_tokener.domain.errors import UpstreamError, refusal
from spotify_tokener.domain.hashes import HashSet, bundle_name, bundle_url, chunk_urls, operations_in
from spotify_tokener.domain.proxy import Proxy
from spotify_tokener.domain.token import HTTP_OK
from spotify_tokener.settings import Settings
from spotify_tokener.sources.direct.knowledge import Page, parse_page, parsed
from spotify_tokener.sources.http_client import Budget, Client, Reply

HTTP_NOT_FOUND = 404
SCRIPT_MAX = 10 << 20
LEARNING_MAX = 32 << 20
SCRIPT = {
    "Accept": "*/*",
    "Sec-Fetch-Dest": "script",
    "Sec-Fetch-Mode": "no-cors",
    "Sec-Fetch-Site": "cross-site",
}
"""A script tag's load from the CDN, another site than the page's."""


class WebPlayer:
    """Asks as the page's own loads do, so that it looks like a visitor's browser."""

    def __init__(self, settings: Settings) -> None:
        self.client, self.page_url = Client(settings, settings.direct_timeout), settings.spotify_url
        self.on_page: Callable[[Page], None] = lambda page: None  # every visit, whatever its reason

    async def page(self, proxy: Proxy | None, cookies: Mapping[str, str] | None = None) -> Page:
        headers = {"User-Agent": self.client.user_agent}  # a navigation: the impersonated browser's own
        reply = await self.client.get(self.page_url, cookies=cookies or {}, headers=headers, proxy=proxy)
        page = await parsed(parse_page, reply, self.page_url)
        self.on_page(page)
        return page

    async def script(self, url: str, proxy: Proxy | None, budget: Budget) -> Reply:
        return await self.client.get(
            url, cookies={}, headers=self.headers(SCRIPT), proxy=proxy, limit=SCRIPT_MAX, budget=budget
        )

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
