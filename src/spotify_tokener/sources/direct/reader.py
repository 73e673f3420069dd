"""The one reader of the web player's page and scripts, for the secret's learning and for the hashes.

Whoever answers in Spotify's place may send bodies of any size, and text built to be slow to parse.
Every body is cut off as it streams (the page at 2 MB, a script at 10 MB, one learning's scripts at
32 MB in all), and every parse of what was read runs in one worker thread: neither memory nor the
event loop that serves cached tokens is at the upstream's mercy, and two learnings never parse at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from spotify_tokener.domain.proxy import Proxy
from spotify_tokener.sources.direct.client import ANSWER_MAX, Budget, Client, Reply
from spotify_tokener.sources.direct.knowledge import Page, parse_page

SCRIPT_MAX = 10 << 20
LEARNING_MAX = 32 << 20
SCRIPT = {
    "Accept": "*/*",
    "Sec-Fetch-Dest": "script",
    "Sec-Fetch-Mode": "no-cors",
    "Sec-Fetch-Site": "cross-site",
}
"""A script tag's load from the CDN, another site than the page's."""

T = TypeVar("T")
_PARSER = ThreadPoolExecutor(1, "tokener-parse")


async def parsed(work: Callable[..., T], *args: Any) -> T:
    """``work(*args)`` in the parsing thread, while the loop goes on serving."""
    return await asyncio.get_running_loop().run_in_executor(_PARSER, work, *args)


def learning_budget() -> Budget:
    return Budget(LEARNING_MAX)


class WebPlayer:
    """The page as a navigation asks for it, its scripts as script tags load them."""

    def __init__(self, client: Client, page_url: str, user_agent: str) -> None:
        self.client = client
        self.page_url = page_url
        self.user_agent = user_agent
        self.on_page: Callable[[Page], None] = lambda page: None  # every visit, whatever its reason

    async def page(self, proxy: Proxy | None, cookies: Mapping[str, str] | None = None) -> Page:
        headers = {"User-Agent": self.user_agent}  # a navigation: the impersonated browser's own
        reply = await self.client.get(
            self.page_url, cookies=cookies or {}, headers=headers, proxy=proxy, limit=ANSWER_MAX
        )
        page = await parsed(parse_page, reply, self.page_url)
        self.on_page(page)
        return page

    async def script(self, url: str, proxy: Proxy | None, budget: Budget) -> Reply:
        return await self.client.get(
            url, cookies={}, headers=self.headers(SCRIPT), proxy=proxy, limit=SCRIPT_MAX, budget=budget
        )

    def headers(self, kind: Mapping[str, str]) -> dict[str, str]:
        """What the page's own request of this kind carries, besides the impersonated browser's."""
        return {"User-Agent": self.user_agent, "Referer": self.page_url, **kind}
