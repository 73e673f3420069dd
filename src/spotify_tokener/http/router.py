"""What the HTTP layer is made of: the request and the answer, the route, and the rules every answer
follows (JSON bodies; a client's mistake or a failure is a JSON error, a bug never a traceback).

A handful of fixed routes on Granian's RSGI is the fastest way to serve them (BENCHMARKS.md); a framework
would cost much of that speed for features we do not use.
"""

from __future__ import annotations

import logging
import math
import traceback
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from spotify_tokener.core.ports import Left
from spotify_tokener.domain.backoff import Backoff
from spotify_tokener.domain.clock import wall_clock_ms
from spotify_tokener.domain.errors import TokenError
from spotify_tokener.http.params import InvalidParameter
from spotify_tokener.http.schemas import FailureBody, ValidationErrorBody

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


def allow_header(methods: Iterable[str]) -> str:
    methods = set(methods)
    implied = {"OPTIONS", "HEAD"} if "GET" in methods else {"OPTIONS"}
    return ", ".join(sorted({*methods, *implied}))


async def ready(response: Response) -> Response:
    return response


async def guarded(handler: Handler, request: Request, backoff: Backoff) -> Response:
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
