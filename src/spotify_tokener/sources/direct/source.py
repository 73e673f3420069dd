"""The direct source: the page's token call made without a browser, with what the browser taught
its :class:`Learner` (the TOTP secret, the call's shape). One attempt is a few small HTTPS calls (a page
visit once per identity, for its device cookie; the server's time; the token call): a fraction of a
browser's time, and no Chromium in memory.
"""

from __future__ import annotations

import contextlib
import re
from collections import OrderedDict
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin

import orjson

from spotify_tokener.core.ports import Notes, StateStore
from spotify_tokener.domain.clock import wall_clock_ms
from spotify_tokener.domain.errors import COOKIE_REJECTED, CookieRejected, Rejected
from spotify_tokener.domain.proxy import Proxy
from spotify_tokener.domain.token import ANONYMOUS, SP_DC, Token, identity_of, parse_token_response
from spotify_tokener.settings import Settings
from spotify_tokener.sources.direct.knowledge import Learner
from spotify_tokener.sources.direct.reader import Page, PageText, WebPlayer

DEVICE_COOKIE = "sp_t"
DEVICE = "device.json"  # in the state folder: the anonymous device cookie (an account's is never kept)
COOKIE_VALUE = re.compile(r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]{1,256}")
"""RFC 6265's cookie-octets, of a sensible length: what a kept device cookie must be."""


class DirectSource:
    """An :class:`~spotify_tokener.core.ports.ProxiedSource` that needs no browser."""

    def __init__(self, settings: Settings, notes: Notes, kept: StateStore) -> None:
        """``notes`` is where replicas share what they learned (Redis, through its coordinator);
        ``kept``, what this one learned and the anonymous device, across restarts."""
        self._settings = settings
        self.web = WebPlayer(settings)
        self._server_time_url = urljoin(settings.spotify_url, "/api/server-time")  # beside the token call
        self.learner = Learner(self._read_page, settings, notes=notes, clock=wall_clock_ms, kept=kept)
        self._kept = kept
        self._devices: OrderedDict[str, str] = OrderedDict()  # identity -> its sp_t
        device = (kept.load(DEVICE) or {}).get(DEVICE_COOKIE)
        if isinstance(device, str) and COOKIE_VALUE.fullmatch(device):
            self._devices[ANONYMOUS] = device

    async def attempt(self, sp_dc: str | None = None, proxy: Proxy | None = None) -> Token:
        identity = identity_of(sp_dc)
        knowledge = await self.learner.current(proxy)
        device = await self._device(identity, sp_dc, proxy)
        cookies = {DEVICE_COOKIE: device} if device else {}
        if sp_dc:
            cookies[SP_DC] = sp_dc
        server_s = await self._server_time(proxy)
        called_at_ms = wall_clock_ms()
        url = knowledge.shape.render(knowledge.secret, called_at_ms / 1000, server_s)
        reply = await self.web.api(url, cookies, proxy)
        try:
            token = parse_token_response(reply.status, reply.headers, reply.body, now_ms=wall_clock_ms())
        except Rejected as error:  # the call itself was wrong: its secret or its shape is stale
            self.learner.turned_down(knowledge, error)
            raise
        self.learner.accepted(knowledge, called_at_ms)
        if sp_dc and token.is_anonymous and self.learner.secret_proven:
            # The call was right (a proven secret, accepted): the cookie is dead, and the browser,
            # making the same call, would say so at the cost of a context.
            raise CookieRejected(COOKIE_REJECTED)
        return token

    async def close(self) -> None:
        await self.learner.close()
        await self.web.client.close()

    async def _device(self, identity: str, sp_dc: str | None, proxy: Proxy | None) -> str | None:
        """From the identity's own first visit of the page; if it set none, the next attempt visits again."""
        if identity not in self._devices:
            await self._visit(identity, {SP_DC: sp_dc} if sp_dc else {}, proxy)
        if (device := self._devices.get(identity)) is not None:
            self._devices.move_to_end(identity)
        return device

    async def _visit(self, identity: str, cookies: dict[str, str], proxy: Proxy | None) -> Page:
        page = await self.web.page(proxy, cookies)
        if (device := page.cookies.get(DEVICE_COOKIE)) and identity not in self._devices:
            self._devices[identity] = device
            if identity == ANONYMOUS:
                self._kept.save(DEVICE, {DEVICE_COOKIE: device})
            while len(self._devices) > self._settings.remembered_identities:
                self._devices.popitem(last=False)
        return page

    async def _read_page(self, proxy: Proxy | None) -> PageText:
        """The visit also gives the anonymous device."""
        return await self.web.text(await self._visit(ANONYMOUS, {}, proxy), proxy)

    async def _server_time(self, proxy: Proxy | None) -> float:
        """Spotify's clock: its server-time answer, else its ``Date`` header, else ours."""
        reply = await self.web.api(self._server_time_url, {}, proxy)
        with contextlib.suppress(orjson.JSONDecodeError, KeyError, TypeError):
            value = orjson.loads(reply.body)["serverTime"]
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
        try:
            return parsedate_to_datetime(reply.headers["date"]).timestamp()
        except (KeyError, TypeError, ValueError, IndexError):
            return wall_clock_ms() / 1000
