"""The embed source: the anonymous token of Spotify's embed player (the page sites put in an iframe
to play one public track), from a pool Spotify keeps: no TOTP, nothing to learn, no browser. Some
arrive with minutes of life left: the page is loaded again, a few times at most, for one to serve.
"""

from __future__ import annotations

import asyncio

from spotify_tokener.domain.clock import wall_clock_ms
from spotify_tokener.domain.embed import embed_url, parse_embed_page
from spotify_tokener.domain.errors import HTTP_SERVER_ERRORS, UpstreamError, refusal
from spotify_tokener.domain.proxy import Proxy
from spotify_tokener.domain.token import HTTP_OK, Token, parse_retry_after
from spotify_tokener.settings import Settings
from spotify_tokener.sources.http_client import Client, Reply

TRIES = 3
MAX_PAGE_BYTES = 2 * 1024 * 1024  # a real embed page is a few hundred kilobytes
IFRAME = {"Sec-Fetch-Dest": "iframe", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Site": "cross-site"}
"""How Chrome loads a page another site embeds."""


class EmbedSource:
    """An :class:`~spotify_tokener.core.ports.ProxiedSource` for anonymous tokens only."""

    def __init__(self, settings: Settings) -> None:
        self._client = client = Client(settings, settings.embed_timeout)
        self._freshness = settings.freshness
        self._url = embed_url(settings.spotify_url, settings.embed_entity)
        self._headers = {"User-Agent": client.user_agent, **IFRAME}

    async def attempt(self, sp_dc: str | None = None, proxy: Proxy | None = None) -> Token:
        """Never asked for an account: the chain leaves this source out of their attempts."""
        for _ in range(TRIES):
            reply = await self._client.get(
                self._url, cookies={}, headers=self._headers, proxy=proxy, limit=MAX_PAGE_BYTES
            )
            if reply.status != HTTP_OK:
                raise self._refusal(reply)
            token = await asyncio.to_thread(parse_embed_page, reply.body)  # up to 2 MB of JSON
            if self._freshness.is_servable(token, wall_clock_ms()):
                return token
        raise UpstreamError(f"the embed page's tokens had too little life left to serve, {TRIES} times")

    async def close(self) -> None:
        await self._client.close()

    def _refusal(self, reply: Reply) -> UpstreamError:
        """A 5xx is this page's own trouble (the token call may well work): the next source answers.
        Any other refusal means what it means for any call (a 429: the address or the pace)."""
        if reply.status >= HTTP_SERVER_ERRORS:
            return UpstreamError(f"Spotify answered the embed page with HTTP {reply.status}")
        retry_after = parse_retry_after(reply.headers.get("retry-after"), wall_clock_ms() / 1000)
        return refusal(reply.status, "the embed page", retry_after)
