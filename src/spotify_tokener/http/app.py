"""The HTTP API: the RSGI entry point, its hot answer, and the handlers of every route.

An :class:`App` is self-contained (its service, its counts, its background work), so tests can run
several side by side; ``App.lifespan`` starts and stops that background work. It is assembled by
``spotify_tokener.wiring.create_app``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from time import time_ns
from typing import Protocol

from spotify_tokener.core.chain import SourceChain
from spotify_tokener.core.hashes import HashKeeper
from spotify_tokener.core.proxies import ProxyPool
from spotify_tokener.core.service import TokenService
from spotify_tokener.domain.clock import wall_clock_ms
from spotify_tokener.domain.errors import TokenError
from spotify_tokener.domain.hashes import METADATA_TYPES, OPERATION, SHA256, hash_record
from spotify_tokener.domain.token import kind_of
from spotify_tokener.http import openapi
from spotify_tokener.http.counts import ERROR, HIT, MISS, RequestCounts
from spotify_tokener.http.encoder import HotAnswer, encode_token
from spotify_tokener.http.params import ApiKeys, parse_force, parse_one, parse_sp_dc, presented_key
from spotify_tokener.http.router import (
    JSON_NO_STORE,
    NO_STORE,
    Handler,
    HTTPProtocol,
    Request,
    Response,
    Route,
    Scope,
    allow_header,
    error_response,
    guarded,
    json_response,
    ready,
)
from spotify_tokener.http.schemas import MetadataBody
from spotify_tokener.http.status import BrowserInfo, LearnerInfo, health_body, status_body
from spotify_tokener.settings import Settings

TOKEN_PATH = "/api/token"  # noqa: S105 - a path, not a secret


class Exposition(Protocol):
    """The metrics as ``GET /metrics`` serves them; the metrics module implements it."""

    content_type: str

    def render(self) -> bytes: ...


class App:
    """An RSGI application; Granian calls ``__rsgi__`` for every request."""

    def __init__(
        self,
        service: TokenService,
        settings: Settings,
        metrics: Exposition,
        browser: BrowserInfo | None,
        closing: Callable[[], Awaitable[None]],
        *,
        hashes: HashKeeper,
        proxies: ProxyPool | None,
        sources: SourceChain,
        learner: LearnerInfo | None,
    ) -> None:
        """``closing`` is what the lifespan closes after the service (the browser it owns)."""
        self.service = service
        self.metrics = metrics
        self.browser = browser
        self.proxies = proxies
        self.sources = sources
        self._learner = learner
        self._hashes = hashes
        self._closing = closing
        self._backoff = settings.backoff
        self._started = time.monotonic()
        self._keys = ApiKeys(settings.api_keys)
        self._hot = HotAnswer(lambda: service.anonymous_token, enabled=not self._keys.enabled)
        service.watch_anonymous(self._hot.drop)
        routes = (
            Route(TOKEN_PATH, "GET", self.get_token, openapi.token_get),
            Route("/api/token/refresh", "POST", partial(self.get_token, refresh=True), openapi.token_refresh),
            Route("/api/token/status", "GET", self.status, openapi.token_status),
            Route("/api/hashes", "GET", self.hashes, openapi.hashes),
            Route("/api/metadata", "GET", self.metadata, openapi.metadata),
            Route("/health", "GET", self.health, openapi.health, open=True),
            Route("/metrics", "GET", self.metrics_text, openapi.metrics),
        )
        self.document = openapi.build_openapi(routes, api_keys=self._keys.enabled)
        # Every route, once: the router serves them, the document describes them, the metrics count them.
        self.routes = (*routes, *openapi.documentation_routes(self.document))
        self._handlers: dict[str, dict[str, Handler]] = {}
        for route in self.routes:
            self._handlers.setdefault(route.path, {})[route.method] = route.handler
        self._allowed = {path: allow_header(methods) for path, methods in self._handlers.items()}
        self._open = frozenset(route.path for route in self.routes if route.open)
        self.counts = RequestCounts(self._handlers, TOKEN_PATH)

    async def __rsgi__(self, scope: Scope, protocol: HTTPProtocol) -> None:
        """Granian's entry point.

        LavaSrc's call, a bare ``GET /api/token`` while a fresh anonymous token is cached, is nearly
        all the traffic. It is answered here from the hot answer, without the router's objects and
        without a call, which measurably mattered (BENCHMARKS.md). Anything else, including that call
        when a fetch is needed, takes the router and is counted after it.
        """
        path = scope.path
        if path == TOKEN_PATH and scope.method == "GET" and not scope.query_string:
            hot, now = self._hot, time_ns()
            if (now < hot.until_ns or hot.reheat(now)) and "cookie" not in scope.headers:
                protocol.response_bytes(200, JSON_NO_STORE, hot.body)
                self.counts.hot_hits += 1
                return
        request = Request(scope.method, path, scope.query_string, scope.headers, protocol.client_disconnect)
        response = await self.dispatch(request)
        if request.method == "HEAD":
            protocol.response_empty(response.status, response.headers)
        elif response.file is not None:
            protocol.response_file(response.status, response.headers, response.file)
        else:
            protocol.response_bytes(response.status, response.headers, response.body)
        self.counts.responded(path, response.status)

    @contextlib.asynccontextmanager
    async def lifespan(self) -> AsyncIterator[App]:
        await self.service.start()
        try:
            yield self
        finally:
            await self.service.stop()
            await self._closing()

    def dispatch(self, request: Request) -> Awaitable[Response]:
        """The answer: the handler's (a plain function returning the awaitable: one coroutine fewer), or
        the API key's, the path's or the method's refusal. HEAD is GET's answer without its body."""
        if self._keys.enabled and request.path not in self._open:
            presented = presented_key(request.headers.get("authorization"), request.query_string)
            if not self._keys.accepts(presented):
                return ready(error_response(401, "missing or wrong API key", ("www-authenticate", "Bearer")))
        methods = self._handlers.get(request.path)
        if methods is None:
            return ready(error_response(404, "Endpoint not found"))
        handler = methods.get("GET" if request.method == "HEAD" else request.method)
        if handler is None:
            allowed = self._allowed[request.path]
            if request.method == "OPTIONS":
                return ready(Response(204, headers=[("allow", allowed)]))
            return ready(error_response(405, "Method not allowed", ("allow", allowed)))
        return guarded(handler, request, self._backoff)

    async def get_token(self, request: Request, *, refresh: bool = False) -> Response:
        """``refresh``: the POST route, always forced, so it reads no ``force`` parameter."""
        force = refresh or parse_force(request.query_string)
        sp_dc = parse_sp_dc(request.cookie_headers())
        kind = kind_of(sp_dc)
        try:
            served = await self.service.get_token(force=force, sp_dc=sp_dc, left=request.left)
        except TokenError:
            self.counts.token_answer(kind, ERROR)
            raise
        self.counts.token_answer(kind, HIT if served.cached else MISS)
        body = encode_token(served.token, cached=served.cached, now_ms=wall_clock_ms())
        return Response(200, body, JSON_NO_STORE)

    async def status(self, request: Request) -> Response:
        body = status_body(
            self.service, self.proxies, self.sources, self._learner, self.browser, now_ms=wall_clock_ms()
        )
        return json_response(200, body, NO_STORE)

    async def hashes(self, request: Request) -> Response:
        """Every operation's hash; ``stale``: a hash Spotify refused, read again at once if served."""
        served = await self._hashes.get(parse_one(request.query_string, "stale", SHA256))
        failed = self._hashes.last_error
        age = max(0, wall_clock_ms() // 1000 - served.updated_at)
        body = {**hash_record(served), "age": age, "lastError": str(failed) if failed else None}
        return json_response(200, body, NO_STORE)

    async def metadata(self, request: Request) -> Response:
        """One operation's hash, by the fork's ``type`` word or by its ``operation`` name."""
        kind = parse_one(request.query_string, "type", OPERATION)
        name = parse_one(request.query_string, "operation", OPERATION) or METADATA_TYPES.get(kind or "")
        served = await self._hashes.get() if name else None
        if served is None or name is None or name not in served.operations:
            return error_response(
                404, f"no such operation: give type ({', '.join(METADATA_TYPES)}) or operation"
            )
        body: MetadataBody = {
            "success": True,
            "operationName": name,
            "hash": served.operations[name],
            "spotifyAppVersion": served.app_version,
            "bundle": served.bundle,
            "updated_at": served.updated_at,
            "timestamp": wall_clock_ms(),
        }
        return json_response(200, body, NO_STORE)

    async def health(self, request: Request) -> Response:
        uptime_s = time.monotonic() - self._started
        body = health_body(uptime_s, self.browser, self.service.shared_store_available, self.proxies)
        return json_response(200, body, NO_STORE)

    async def metrics_text(self, request: Request) -> Response:
        return Response(200, self.metrics.render(), [("content-type", self.metrics.content_type), NO_STORE])
