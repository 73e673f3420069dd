"""The HTTP API: a request and its answer, the RSGI entry point and its hot answer, the routing, and the
handlers of every route.

A handful of fixed routes on Granian's RSGI is the fastest way to serve them (BENCHMARKS.md); a framework
would cost much of that speed for features we do not use. A client's mistake or a failure is a JSON
answer, a bug a 500 without a traceback. An :class:`App` is self-contained (its service, its counts, its
background work), so tests can run several side by side; ``wiring.create_app`` assembles it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import traceback
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from time import time_ns
from typing import Any, Protocol

import orjson

from spotify_tokener.core.hashes import HashKeeper
from spotify_tokener.core.ports import Left
from spotify_tokener.domain.backoff import Backoff
from spotify_tokener.domain.clock import wall_clock_ms
from spotify_tokener.domain.errors import TokenError
from spotify_tokener.domain.hashes import METADATA_TYPES, OPERATION, SHA256, hash_record
from spotify_tokener.domain.token import Kind, kind_of
from spotify_tokener.http import openapi
from spotify_tokener.http.encoder import HotAnswer, encode_token
from spotify_tokener.http.params import (
    ApiKeys,
    InvalidParameter,
    parse_force,
    parse_one,
    parse_sp_dc,
    presented_key,
)
from spotify_tokener.http.schemas import FailureBody, MetadataBody, ValidationErrorBody
from spotify_tokener.http.status import Shown, health_body, status_body
from spotify_tokener.settings import Settings

log = logging.getLogger(__name__)

TOKEN_PATH = "/api/token"  # noqa: S105 - a path, not a secret
JSON = "application/json"
NO_STORE = ("cache-control", "no-store")
JSON_NO_STORE = [("content-type", JSON), NO_STORE]  # shared by every token answer; never mutated
OTHER_ROUTE = "other"  # counted for every path the API does not serve: a scanner cannot add series
HIT, MISS, ERROR = "hit", "miss", "error"  # a token answer from the cache, after a fetch, or none


class Scope(Protocol):
    """The parts of Granian's RSGI scope this layer reads."""

    method: str
    path: str
    query_string: str

    @property
    def headers(self) -> Mapping[str, str]: ...  # Granian's header map, a dict in tests


class HTTPProtocol(Protocol):
    """The parts of Granian's RSGI HTTP protocol this layer answers with."""

    def response_empty(self, status: int, headers: list[tuple[str, str]], /) -> None: ...
    def response_bytes(self, status: int, headers: list[tuple[str, str]], body: bytes, /) -> None: ...
    def response_file(self, status: int, headers: list[tuple[str, str]], file: str, /) -> None: ...
    async def client_disconnect(self) -> None: ...


class Exposition(Protocol):
    """The metrics as ``GET /metrics`` serves them; the metrics module implements it."""

    content_type: str

    def render(self) -> bytes: ...


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query_string: str
    headers: Mapping[str, str]
    left: Left | None = None  # resolves once the client has hung up (Granian's client_disconnect)

    def cookie_headers(self) -> list[str]:
        """Every Cookie header (HTTP/2 may split cookies over several). Granian hides values that are not
        UTF-8 from ``get`` and ``items`` but not from ``in``: such a Cookie is refused, not taken for none."""
        if "cookie" not in self.headers:
            return []
        values = [value for name, value in self.headers.items() if name.lower() == "cookie"]
        if not values:
            raise InvalidParameter("the Cookie header is not valid UTF-8")
        return values


@dataclass(slots=True)  # not frozen: built on every request, and a frozen one cost ~0.5 µs to build
class Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    file: str | None = None


Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class Route:
    path: str
    method: str
    handler: Handler
    document: Mapping[str, Any] | None = None  # its OpenAPI operation; None: not part of the API
    open: bool = False  # answered without an API key: health checks and the API's own documentation


class App:
    def __init__(
        self,
        shown: Shown,
        settings: Settings,
        metrics: Exposition,
        hashes: HashKeeper,
        closing: Callable[[], Awaitable[None]],
    ) -> None:
        """``closing`` is what the lifespan closes after the service (the browser it owns)."""
        self.shown = shown
        self.service = service = shown.service
        self.metrics = metrics
        self.hash_keeper = hashes
        self._closing = closing
        self._backoff = settings.backoff
        self._keys = ApiKeys(settings.api_keys)
        self._hot = HotAnswer(lambda: service.anonymous.cached, enabled=not self._keys.enabled)
        service.anonymous.watch(self._hot.drop)
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
        # The document and the Swagger UI that reads it are open to anyone: nothing in them is secret.
        pages = {"/openapi.json": (JSON, orjson.dumps(self.document), None), **openapi.SWAGGER_PAGES}
        documentation = (Route(path, "GET", _fixed(*page), open=True) for path, page in pages.items())
        # Every route, once: served here, described if part of the API, counted by path.
        self.routes = (*routes, *documentation)
        self._handlers: dict[str, dict[str, Handler]] = {}
        for route in self.routes:
            self._handlers.setdefault(route.path, {})[route.method] = route.handler
        self._open = frozenset(route.path for route in self.routes if route.open)
        # Plain ints, which the metrics read when scraped: prometheus_client's counters take a lock per
        # increment, which the hot answer cannot afford. Only the event loop writes them.
        self.responses: Counter[tuple[str, int]] = Counter()  # by (route, status), hot answers aside
        self.token_answers: Counter[tuple[Kind, str]] = Counter()  # by (kind, result), hot answers aside
        self.hot_answers = 0  # each a 200 on TOKEN_PATH and an anonymous HIT

    async def __rsgi__(self, scope: Scope, protocol: HTTPProtocol) -> None:
        """Granian's entry point.

        LavaSrc's call, a bare ``GET /api/token`` while a fresh anonymous token is cached, is nearly
        all the traffic. It is answered here from the hot answer, without a Request, a Response or a
        call, which measurably mattered (BENCHMARKS.md). Anything else, including that call when a fetch
        is needed, is dispatched and counted after it.
        """
        path = scope.path
        if path == TOKEN_PATH and scope.method == "GET" and not scope.query_string:
            hot, now = self._hot, time_ns()
            if (now < hot.until_ns or hot.reheat(now)) and "cookie" not in scope.headers:
                protocol.response_bytes(200, JSON_NO_STORE, hot.body)
                self.hot_answers += 1
                return
        request = Request(scope.method, path, scope.query_string, scope.headers, protocol.client_disconnect)
        response = await self.dispatch(request)
        if request.method == "HEAD":
            protocol.response_empty(response.status, response.headers)
        elif response.file is not None:
            protocol.response_file(response.status, response.headers, response.file)
        else:
            protocol.response_bytes(response.status, response.headers, response.body)
        self.responses[path if path in self._handlers else OTHER_ROUTE, response.status] += 1

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
                return _ready(error_response(401, "missing or wrong API key", ("www-authenticate", "Bearer")))
        methods = self._handlers.get(request.path)
        if methods is None:
            return _ready(error_response(404, "Endpoint not found"))
        handler = methods.get("GET" if request.method == "HEAD" else request.method)
        if handler is None:
            implied = {"OPTIONS", "HEAD"} if "GET" in methods else {"OPTIONS"}
            allowed = ", ".join(sorted({*methods, *implied}))
            if request.method == "OPTIONS":
                return _ready(Response(204, headers=[("allow", allowed)]))
            return _ready(error_response(405, "Method not allowed", ("allow", allowed)))
        return _guarded(handler, request, self._backoff)

    async def get_token(self, request: Request, *, refresh: bool = False) -> Response:
        """``refresh``: the POST route, always forced, so it reads no ``force`` parameter."""
        force = refresh or parse_force(request.query_string)
        sp_dc = parse_sp_dc(request.cookie_headers())
        kind = kind_of(sp_dc)
        try:
            served = await self.service.get_token(force=force, sp_dc=sp_dc, left=request.left)
        except TokenError:
            self.token_answers[kind, ERROR] += 1
            raise
        self.token_answers[kind, HIT if served.cached else MISS] += 1
        body = encode_token(served.token, cached=served.cached, now_ms=wall_clock_ms())
        return Response(200, body, JSON_NO_STORE)

    async def status(self, request: Request) -> Response:
        return json_response(200, status_body(self.shown), NO_STORE)

    async def hashes(self, request: Request) -> Response:
        """Every operation's hash; ``stale``: a hash Spotify refused, read again at once if served."""
        served = await self.hash_keeper.get(parse_one(request.query_string, "stale", SHA256))
        failed = self.hash_keeper.last_error
        age = max(0, wall_clock_ms() // 1000 - served.updated_at)
        body = {**hash_record(served), "age": age, "lastError": str(failed) if failed else None}
        return json_response(200, body, NO_STORE)

    async def metadata(self, request: Request) -> Response:
        """One operation's hash, by the fork's ``type`` word or by its ``operation`` name."""
        kind = parse_one(request.query_string, "type", OPERATION)
        name = parse_one(request.query_string, "operation", OPERATION) or METADATA_TYPES.get(kind or "")
        served = await self.hash_keeper.get() if name else None
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
        return json_response(200, health_body(self.shown), NO_STORE)

    async def metrics_text(self, request: Request) -> Response:
        return Response(200, self.metrics.render(), [("content-type", self.metrics.content_type), NO_STORE])


def json_response(status: int, body: Mapping[str, Any], *extra: tuple[str, str]) -> Response:
    return Response(status, orjson.dumps(body), [("content-type", JSON), *extra])


def error_response(status: int, message: str, *extra: tuple[str, str]) -> Response:
    return json_response(status, {"error": message, "timestamp": wall_clock_ms()}, *extra)


def _fixed(content_type: str, body: bytes, file: str | None) -> Handler:
    """A handler whose answer never changes: the API's own documentation."""
    response = Response(200, body, [("content-type", content_type)], file)
    return lambda request: _ready(response)


async def _ready(response: Response) -> Response:
    return response


async def _guarded(handler: Handler, request: Request, backoff: Backoff) -> Response:
    """The handler's answer; a bad parameter is a 400, a failure its status, anything else a 500."""
    try:
        return await handler(request)
    except InvalidParameter as error:
        invalid: ValidationErrorBody = {
            "error": "Validation error",
            "details": str(error),
            "timestamp": wall_clock_ms(),
        }
        return json_response(400, invalid)
    except TokenError as error:
        body: FailureBody = {"success": False, "error": str(error), "timestamp": wall_clock_ms()}
        if error.retry_after is None:
            return json_response(error.status, body, NO_STORE)
        # Rounded up: a client told to come back after 2 s, when 2.4 s are needed, is refused again.
        retry_after = max(1, math.ceil(backoff.honoured_s(error.retry_after)))
        return json_response(error.status, body, NO_STORE, ("retry-after", str(retry_after)))
    except Exception as error:
        # The stack, not the message: a message may quote a token or a cookie.
        stack = "".join(traceback.format_tb(error.__traceback__))
        log.error("unhandled %s on %s %s\n%s", type(error).__name__, request.method, request.path, stack)
        return error_response(500, "Internal server error")
