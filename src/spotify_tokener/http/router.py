"""A deliberately tiny RSGI routing layer: fixed paths, JSON bodies, nothing else.

Each route is declared once (:class:`Route`): served, documented, counted, and known open or not. A
handful of fixed routes on Granian's RSGI is the fastest way to serve them (BENCHMARKS.md); a framework
would cost much of that speed for features we do not use. A client's mistake gets a JSON error, never a
traceback.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from spotify_tokener.core.ports import Left
from spotify_tokener.domain.clock import wall_clock_ms
from spotify_tokener.http.params import InvalidParameter

log = logging.getLogger(__name__)

JSON = "application/json"
NO_STORE = ("cache-control", "no-store")
JSON_NO_STORE = [("content-type", JSON), NO_STORE]  # shared by every token answer; never mutated


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
Guard = Callable[[Request], "Response | None"]


@dataclass(frozen=True, slots=True)
class Route:
    path: str
    method: str
    handler: Handler
    document: Mapping[str, Any] | None = None  # its OpenAPI operation; None: not part of the API
    open: bool = False  # answered without an API key: health checks and the API's own documentation


def json_response(status: int, body: Mapping[str, Any], *extra: tuple[str, str]) -> Response:
    return Response(status, orjson.dumps(body), [("content-type", JSON), *extra])


def error_response(status: int, message: str, *extra: tuple[str, str]) -> Response:
    return json_response(status, {"error": message, "timestamp": wall_clock_ms()}, *extra)


def fixed(content_type: str, body: bytes = b"", file: str | None = None) -> Handler:
    """A handler whose answer never changes: the API's own documentation."""
    response = Response(200, body, [("content-type", content_type)], file)

    async def answer(request: Request) -> Response:
        return response

    return answer


class Router:
    """Maps (path, method) to a handler; HEAD is served by GET handlers with the body dropped."""

    def __init__(self, routes: Iterable[Route], guard: Guard | None = None) -> None:
        """``guard`` may refuse a request (its answer) before any routing, unless its route is open."""
        routes = tuple(routes)
        self._routes: dict[str, dict[str, Handler]] = {}
        for route in routes:
            self._routes.setdefault(route.path, {})[route.method] = route.handler
        self._open = frozenset(route.path for route in routes if route.open)
        self._guard = guard
        self._allowed = {path: _allow_header(methods) for path, methods in self._routes.items()}
        self.paths = frozenset(self._routes)

    async def __call__(self, scope: Scope, protocol: HTTPProtocol) -> int:
        """Answer the request; returns the status sent, for the metrics."""
        request = Request(
            scope.method, scope.path, scope.query_string, scope.headers, protocol.client_disconnect
        )
        response = await self.dispatch(request)
        if request.method == "HEAD":
            protocol.response_empty(response.status, response.headers)
        elif response.file is not None:
            protocol.response_file(response.status, response.headers, response.file)
        else:
            protocol.response_bytes(response.status, response.headers, response.body)
        return response.status

    def dispatch(self, request: Request) -> Awaitable[Response]:
        """The handler's answer (a plain function returning the awaitable: one coroutine fewer)."""
        guard = self._guard
        if guard is not None and request.path not in self._open and (refused := guard(request)) is not None:
            return _ready(refused)
        methods = self._routes.get(request.path)
        if methods is None:
            return _ready(error_response(404, "Endpoint not found"))
        handler = methods.get("GET" if request.method == "HEAD" else request.method)
        if handler is None:
            allowed = self._allowed[request.path]
            if request.method == "OPTIONS":
                return _ready(Response(204, headers=[("allow", allowed)]))
            return _ready(error_response(405, "Method not allowed", ("allow", allowed)))
        return _guarded(handler, request)


async def _ready(response: Response) -> Response:
    return response


async def _guarded(handler: Handler, request: Request) -> Response:
    try:
        return await handler(request)
    except Exception as error:
        # The stack, not the message: a message may quote a token or a cookie.
        stack = "".join(traceback.format_tb(error.__traceback__))
        log.error("unhandled %s on %s %s\n%s", type(error).__name__, request.method, request.path, stack)
        return error_response(500, "Internal server error")


def _allow_header(methods: Mapping[str, Handler]) -> str:
    implied = {"OPTIONS", "HEAD"} if "GET" in methods else {"OPTIONS"}
    return ", ".join(sorted({*methods, *implied}))
