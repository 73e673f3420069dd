"""Reading the persisted-query hashes from the web player by plain HTTP: the page, its main bundle,
then the chunks the bundle names, a few at a time, all within one learning's budget."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace

from spotify_tokener.domain.clock import Clock
from spotify_tokener.domain.errors import UpstreamError, refusal
from spotify_tokener.domain.hashes import HashSet, bundle_name, bundle_url, chunk_urls, operations_in
from spotify_tokener.domain.proxy import Proxy
from spotify_tokener.domain.token import HTTP_OK
from spotify_tokener.sources.direct.reader import WebPlayer, learning_budget, parsed

CHUNKS_AT_ONCE = 4
HTTP_NOT_FOUND = 404


class HashReader:
    """The core's ``Learn`` for the hashes; ``exit`` names the proxy to leave through, if any."""

    def __init__(self, web: WebPlayer, exit: Callable[[], Proxy | None], clock: Clock) -> None:
        self._web, self._exit, self._clock = web, exit, clock

    async def __call__(self, known: HashSet | None) -> HashSet:
        """The set the page shows now: ``known`` again, dated now, while it names the same bundle."""
        proxy = self._exit()
        page = await self._web.page(proxy)
        url = bundle_url(page.scripts)
        if url is None:
            raise UpstreamError("the web player page names no web-player bundle")
        now_s = self._clock() // 1000
        if known is not None and known.bundle == bundle_name(url):
            return replace(known, app_version=page.app_version or known.app_version, updated_at=now_s)
        budget = learning_budget()
        main = await self._web.script(url, proxy, budget)
        if main.status != HTTP_OK:
            raise refusal(main.status, "the web player's bundle")
        chunks = await parsed(lambda: chunk_urls(main.body.decode("utf-8", "replace"), url))
        places = asyncio.Semaphore(CHUNKS_AT_ONCE)

        async def read(chunk: str) -> bytes:
            async with places:
                reply = await self._web.script(chunk, proxy, budget)
            if reply.status == HTTP_NOT_FOUND:  # a map read wrong names a file that is not there
                return b""
            if reply.status != HTTP_OK:
                raise refusal(reply.status, "a script of the web player")
            return reply.body

        read_all = await asyncio.gather(*(read(chunk) for chunk in chunks), return_exceptions=True)
        failed = next((result for result in read_all if isinstance(result, BaseException)), None)
        if failed is not None:
            raise failed
        scripts = [main.body, *(result for result in read_all if isinstance(result, bytes))]
        operations = await parsed(operations_in, scripts)
        if not operations:
            raise UpstreamError("no persisted-query hash found in the web player's scripts")
        return HashSet(bundle_name(url), page.app_version, operations, now_s)
