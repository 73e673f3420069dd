"""The direct source: the page's token call made without a browser, with what the browser taught.

One attempt is a few small HTTPS calls (a page visit once per identity, for its device cookie; the
server's time; the token call), tens of milliseconds instead of a browser's hundreds, and no
Chromium in memory. What it cannot know by itself (the TOTP secret, the call's shape) it learns from
the page's scripts and from the browser source's sightings (``learning.py``); when Spotify turns
that knowledge down, the attempt fails in a way the chain hands to the next source, and a relearn
waits for the next sighting.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from email.utils import parsedate_to_datetime

import orjson

from spotify_tokener.core.accounts import ANONYMOUS, account_identity
from spotify_tokener.core.ports import Notes
from spotify_tokener.domain.clock import Clock, wall_clock_ms
from spotify_tokener.domain.egress import Proxy
from spotify_tokener.domain.errors import FetchTimeout, NotReady, TokenError
from spotify_tokener.domain.request_shape import Sighting, confirms, default_shape, learn_shape
from spotify_tokener.domain.token import Token, parse_token_response
from spotify_tokener.domain.totp import Secret
from spotify_tokener.settings import Settings
from spotify_tokener.sources.direct.client import Client
from spotify_tokener.sources.direct.learning import (
    HTTP_OK,
    NOTE,
    Knowledge,
    Origin,
    Page,
    candidates_in,
    confirmed_by,
    dump_knowledge,
    load_knowledge,
    parse_page,
)

log = logging.getLogger(__name__)

DEVICE_COOKIE = "sp_t"
NOTHING_LEARNED = "no secret learned yet: none in the page's scripts could be confirmed"


class DirectSource:
    """An :class:`~spotify_tokener.core.ports.ExitSource` that needs no browser."""

    def __init__(
        self,
        settings: Settings,
        client: Client,
        *,
        pinned: Secret | None = None,
        user_agent: str,
        notes: Notes | None = None,
        clock: Clock = wall_clock_ms,
    ) -> None:
        """``notes`` is where replicas share what they learned (Redis, through its coordinator)."""
        self._settings = settings
        self._client = client
        self._clock = clock
        self._user_agent = user_agent
        self._page_url = settings.spotify_url
        self._default_shape = default_shape(settings.spotify_url)
        self._knowledge = Knowledge(pinned, self._default_shape, Origin.PINNED) if pinned else None
        self._learned_at_ms = 0  # when what is known was learned, here or by another replica
        self._notes = notes
        self._sharing: set[asyncio.Task[None]] = set()
        self._sighting: Sighting | None = None
        self._tried: set[str] = set()  # unconfirmed secrets already sent upstream, never sent twice
        self._devices: OrderedDict[str, str] = OrderedDict()  # identity -> its sp_t
        self._remembered = settings.max_accounts + 1
        self._relearning: asyncio.Task[None] | None = None
        self._exit: Proxy | None = None  # the last attempt's exit, for learning in the background
        self.on_learned: Callable[[], None] = lambda: None
        self.trouble: str | None = None  # why it cannot make tokens now, for ``status``

    @property
    def knowledge(self) -> Knowledge | None:
        return self._knowledge

    @property
    def totp_version(self) -> int | None:
        return self._knowledge.secret.version if self._knowledge else None

    @property
    def secret_origin(self) -> str | None:
        return self._knowledge.origin.value if self._knowledge else None

    async def attempt(self, sp_dc: str | None = None, proxy: Proxy | None = None) -> Token:
        self._exit = proxy
        try:
            async with asyncio.timeout(self._settings.direct_timeout):
                return await self._attempt(sp_dc, proxy)
        except TimeoutError:
            raise FetchTimeout.after(self._settings.direct_timeout) from None

    def teach(self, sighting: Sighting) -> None:
        """The browser saw the page's own call: confirm or correct what is known, relearn if wrong."""
        self._sighting = sighting
        self._user_agent = sighting.user_agent or self._user_agent
        known = self._knowledge
        if known is not None and confirms(known.secret, sighting):
            shape = learn_shape(sighting, known.secret)
            origin = Origin.PAGE if known.origin is Origin.UNCONFIRMED else known.origin
            if shape != known.shape or origin is not known.origin or self.trouble:
                self._learned(Knowledge(known.secret, shape, origin))
            return
        if self._relearning is None or self._relearning.done():
            self._relearning = asyncio.get_running_loop().create_task(self._relearn(sighting))

    async def close(self) -> None:
        if self._relearning is not None:
            self._relearning.cancel()
            await asyncio.gather(self._relearning, return_exceptions=True)
        await asyncio.gather(*self._sharing, return_exceptions=True)
        await self._client.close()

    async def _attempt(self, sp_dc: str | None, proxy: Proxy | None) -> Token:
        identity = account_identity(sp_dc) if sp_dc else ANONYMOUS
        await self._adopt_shared()
        knowledge = self._knowledge or await self._learn_unsighted(proxy)
        cookies = {DEVICE_COOKIE: await self._device(identity, sp_dc, proxy)}
        if sp_dc:
            cookies["sp_dc"] = sp_dc
        server_s = await self._server_time(proxy)
        url = knowledge.shape.render(knowledge.secret, self._clock() / 1000, server_s)
        reply = await self._client.get(url, cookies=cookies, headers=self._headers(), proxy=proxy)
        try:
            token = parse_token_response(reply.status, reply.headers, reply.body, now_ms=self._clock())
        except TokenError as error:
            if error.blames_source and self._knowledge is knowledge:
                self._forget(knowledge, error)
            raise
        if not knowledge.confirmed:
            self._learned(Knowledge(knowledge.secret, knowledge.shape, Origin.SPOTIFY))
        return token

    async def _learn_unsighted(self, proxy: Proxy | None) -> Knowledge:
        """With nothing known and no sighting to check against: a versioned candidate not tried yet."""
        page = await self._visit(ANONYMOUS, {}, proxy)
        candidates = candidates_in(await self._scripts(page, proxy))
        if self._sighting is not None:
            knowledge = confirmed_by(candidates, self._sighting)
            if knowledge is not None:
                self._learned(knowledge)
                return knowledge
        fresh = [
            secret for secret in candidates if secret.version is not None and secret.value not in self._tried
        ]
        if not fresh or len(self._tried) >= self._settings.direct_unconfirmed_tries:
            self.trouble = NOTHING_LEARNED
            raise NotReady(f"the direct source has {NOTHING_LEARNED}")
        self._tried.add(fresh[0].value)
        return Knowledge(fresh[0], self._default_shape, Origin.UNCONFIRMED)

    async def _relearn(self, sighting: Sighting) -> None:
        """In the background, after a sighting that what is known does not reproduce."""
        try:
            page = await self._visit(ANONYMOUS, {}, self._exit)
            knowledge = confirmed_by(candidates_in(await self._scripts(page, self._exit)), sighting)
        except TokenError as error:
            self.trouble = f"could not read the web player's scripts: {error}"
            log.warning("direct source: %s", self.trouble)
            return
        except Exception as error:  # a background task: nobody else would see it; only its type
            self.trouble = f"learning crashed ({type(error).__name__})"
            log.error("direct source: %s", self.trouble)
            return
        if knowledge is None:
            self.trouble = NOTHING_LEARNED
            log.warning("direct source: %s; the browser source carries on alone", NOTHING_LEARNED)
            return
        self._learned(knowledge)

    async def _adopt_shared(self) -> None:
        """Take what another replica learned after what is known here: one browser teaches all."""
        if self._notes is None:
            return
        shared = load_knowledge(await self._notes.read_note(NOTE), self._default_shape.endpoint)
        if shared is not None and shared[1] > self._learned_at_ms:
            self._knowledge, self._learned_at_ms = shared
            self.trouble = None
            log.info("direct source: TOTP version %s, from another replica", shared[0].secret.version)

    def _share(self, knowledge: Knowledge) -> None:
        if self._notes is None or knowledge.origin in {Origin.REPLICA, Origin.PINNED, Origin.UNCONFIRMED}:
            return
        task = asyncio.get_running_loop().create_task(
            self._notes.write_note(NOTE, dump_knowledge(knowledge, self._learned_at_ms))
        )
        self._sharing.add(task)
        task.add_done_callback(self._sharing.discard)

    def _learned(self, knowledge: Knowledge) -> None:
        self._knowledge, self.trouble = knowledge, None
        self._learned_at_ms = self._clock()
        self._share(knowledge)
        log.info(
            "direct source: TOTP version %s, from the %s", knowledge.secret.version, knowledge.origin.value
        )
        self.on_learned()

    def _forget(self, knowledge: Knowledge, error: TokenError) -> None:
        """Spotify turned the call down: the secret or the shape is stale until a sighting says which."""
        if knowledge.origin is not Origin.UNCONFIRMED:
            log.warning("direct source: Spotify turned down what it knew (%s); relearning", error)
        self._knowledge = None
        self.trouble = f"Spotify turned down its last call: {error}"

    async def _device(self, identity: str, sp_dc: str | None, proxy: Proxy | None) -> str:
        """The identity's device cookie, from its own first visit of the page."""
        device = self._devices.get(identity)
        if device is None:
            page = await self._visit(identity, {"sp_dc": sp_dc} if sp_dc else {}, proxy)
            device = page.cookies.get(DEVICE_COOKIE, "")
            self._devices[identity] = device
            while len(self._devices) > self._remembered:
                self._devices.popitem(last=False)
        self._devices.move_to_end(identity)
        return device

    async def _visit(self, identity: str, cookies: dict[str, str], proxy: Proxy | None) -> Page:
        reply = await self._client.get(self._page_url, cookies=cookies, headers=self._headers(), proxy=proxy)
        page = parse_page(reply, self._page_url)
        if DEVICE_COOKIE in page.cookies and identity not in self._devices:
            self._devices[identity] = page.cookies[DEVICE_COOKIE]
        return page

    async def _scripts(self, page: Page, proxy: Proxy | None) -> list[bytes]:
        replies = [
            await self._client.get(url, cookies={}, headers=self._headers(), proxy=proxy)
            for url in page.scripts
        ]
        return [reply.body for reply in replies if reply.status == HTTP_OK]

    async def _server_time(self, proxy: Proxy | None) -> float:
        """Spotify's clock: its server-time answer, else its ``Date`` header, else ours."""
        reply = await self._client.get(
            self._server_time_url, cookies={}, headers=self._headers(), proxy=proxy
        )
        try:
            value = orjson.loads(reply.body)["serverTime"]
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
        except (orjson.JSONDecodeError, KeyError, TypeError):
            pass
        try:
            return parsedate_to_datetime(reply.headers["date"]).timestamp()
        except (KeyError, TypeError, ValueError, IndexError):
            return self._clock() / 1000

    @property
    def _server_time_url(self) -> str:
        return self._default_shape.endpoint.rsplit("/", 1)[0] + "/server-time"

    def _headers(self) -> dict[str, str]:
        return {"User-Agent": self._user_agent, "Accept": "application/json", "Referer": self._page_url}
