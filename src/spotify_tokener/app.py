"""The HTTP API: builds the service and browser for one app instance and maps routes onto them.

``create_app`` makes a self-contained instance (its own service, browser and background work), so
tests can run several side by side; ``App.lifespan`` starts and stops that background work.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from functools import partial
from time import time_ns

import orjson

from spotify_tokener import __version__
from spotify_tokener.auth import ApiKeys, presented_key
from spotify_tokener.browser import BrowserManager
from spotify_tokener.clock import wall_clock_ms
from spotify_tokener.coordination import Coordinator, LocalCoordinator
from spotify_tokener.encoder import TokenEncoder
from spotify_tokener.errors import TokenError
from spotify_tokener.harvester import PlaywrightHarvester
from spotify_tokener.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from spotify_tokener.metrics import ERROR, HIT, MISS, Metrics
from spotify_tokener.observer import Kind
from spotify_tokener.openapi import SWAGGER_ASSETS, SWAGGER_FILES, SWAGGER_HTML, SWAGGER_INIT, build_openapi
from spotify_tokener.params import InvalidParameter, parse_force, parse_sp_dc
from spotify_tokener.procinfo import memory_rss
from spotify_tokener.schemas import FailureBody, HealthBody, RedisFields, StatusBody, ValidationErrorBody
from spotify_tokener.service import Harvester, TokenService
from spotify_tokener.settings import Settings
from spotify_tokener.token import Token
from spotify_tokener.web import (
    JSON_NO_STORE,
    NO_STORE,
    HTTPProtocol,
    Request,
    Response,
    Router,
    Scope,
    error_response,
    json_response,
)

NS_PER_MS = 1_000_000
TOKEN_PATH = "/api/token"  # noqa: S105 - a path, not a secret
OPEN_PATHS = frozenset({"/health", "/openapi.json"})  # with an API key, these (and /swagger) stay open


class App:
    """An RSGI application; Granian calls ``__rsgi__`` for every request."""

    def __init__(
        self,
        service: TokenService,
        browser: BrowserManager | None,
        settings: Settings,
        metrics: Metrics,
    ) -> None:
        self.service = service
        self.metrics = metrics
        self._retry_after_max = settings.retry_after_max
        self.browser = browser
        self._started = time.monotonic()
        self._keys = ApiKeys(settings.api_keys)
        self._fast_path = not self._keys.enabled  # every request must show its key otherwise
        self._anonymous = service.anonymous  # read on every request: one attribute, no call
        self._hot_body = b""  # the fast path's answer; see _reheat
        self._hot_encoder = TokenEncoder()  # its own, so the router's answers never evict its prefix
        self._hot_token: Token | None = None
        self._hot_until_ns = 0
        self._openapi = orjson.dumps(build_openapi(api_keys=self._keys.enabled))
        self._encoder = TokenEncoder()
        self._router = Router(
            {
                TOKEN_PATH: {"GET": self.get_token},
                "/api/token/refresh": {"POST": self.refresh},
                "/api/token/status": {"GET": self.status},
                "/health": {"GET": self.health},
                "/metrics": {"GET": self.metrics_text},
                "/openapi.json": {"GET": self.openapi},
                "/swagger": {"GET": self.swagger},
                "/swagger/init.js": {"GET": self.swagger_init},
                **{f"/swagger/{name}": {"GET": partial(self.swagger_asset, name)} for name in SWAGGER_FILES},
            },
            guard=self._authorize if self._keys.enabled else None,
        )
        self._counts = metrics.attach(service, browser, self._router.paths, TOKEN_PATH)

    async def __rsgi__(self, scope: Scope, protocol: HTTPProtocol) -> None:
        """Granian's entry point.

        LavaSrc's call, a bare ``GET /api/token`` while a fresh anonymous token is cached, is nearly
        all the traffic. It is answered here from the hot answer, without the router's objects and
        without a call, which measurably mattered (BENCHMARKS.md). Anything else, including that call
        when a fetch is needed, takes the router. Counting costs the fast path one integer increment;
        the rest is counted after the router.
        """
        path = scope.path
        if path == TOKEN_PATH and scope.method == "GET" and not scope.query_string:
            now = time_ns()
            hot = now < self._hot_until_ns and self._anonymous.token is self._hot_token
            if (hot or self._reheat(now)) and "cookie" not in scope.headers:
                protocol.response_bytes(200, JSON_NO_STORE, self._hot_body)
                self._counts.fast_hits += 1
                return
        self._counts.responded(path, await self._router(scope, protocol))

    def _reheat(self, now_ns: int) -> bool:
        """Encode the hot answer for this millisecond, if the cached anonymous token may be served.

        The hot answer is the bare ``GET /api/token`` body. Its ``timestamp`` is in milliseconds, so
        it is reused until the millisecond ends, which never outlasts the token's serving window (that
        ends on a millisecond too); the fast path drops it sooner if the slot takes another token.
        """
        slot = self._anonymous
        token, now_ms = slot.token, now_ns // NS_PER_MS
        if not self._fast_path or token is None or now_ms >= slot.servable_until_ms:
            return False
        self._hot_body = self._hot_encoder.encode(token, cached=True, now_ms=now_ms)
        self._hot_token = token
        self._hot_until_ns = (now_ms + 1) * NS_PER_MS
        return True

    @contextlib.asynccontextmanager
    async def lifespan(self) -> AsyncIterator[App]:
        await self.service.start()
        try:
            yield self
        finally:
            await self.service.stop()
            if self.browser is not None:
                await self.browser.close()

    def _authorize(self, request: Request) -> Response | None:
        """Refuse requests without a valid API key; health checks and the API's docs stay open."""
        if request.path in OPEN_PATHS or request.path.startswith("/swagger"):
            return None
        presented = presented_key(request.headers.get("authorization"), request.query_string)
        if self._keys.accepts(presented):
            return None
        return error_response(401, "missing or wrong API key", ("www-authenticate", "Bearer"))

    async def dispatch(self, request: Request) -> Response:
        return await self._router.dispatch(request)

    async def get_token(self, request: Request) -> Response:
        try:
            force = parse_force(request.query_string)
            sp_dc = parse_sp_dc(request.cookie_headers())
        except InvalidParameter as error:
            return _invalid(error)
        return await self._serve_token(force=force, sp_dc=sp_dc)

    async def refresh(self, request: Request) -> Response:
        try:
            sp_dc = parse_sp_dc(request.cookie_headers())
        except InvalidParameter as error:
            return _invalid(error)
        return await self._serve_token(force=True, sp_dc=sp_dc)

    async def _serve_token(self, *, force: bool, sp_dc: str | None) -> Response:
        kind: Kind = "anonymous" if sp_dc is None else "account"
        try:
            served = await self.service.get_token(force=force, sp_dc=sp_dc)
        except TokenError as error:
            self._counts.token_answer(kind, ERROR)
            return _failure(error, self._retry_after_max)
        self._counts.token_answer(kind, HIT if served.cached else MISS)
        body = self._encoder.encode(served.token, cached=served.cached, now_ms=wall_clock_ms())
        return Response(200, body, JSON_NO_STORE)

    async def status(self, request: Request) -> Response:
        state = self.service.status()
        body: StatusBody = {
            "success": True,
            "status": {
                "hasToken": state.has_token,
                "isValid": state.is_valid,
                "shouldProactivelyRefresh": state.should_refresh,
                "expiresAt": state.expires_at_ms,
                "isRefreshing": state.refreshing,
                "timeUntilExpiry": state.ms_until_expiry,
                "timeUntilProactiveRefresh": state.ms_until_refresh,
                "lastError": state.last_error,
                "consecutiveFailures": state.consecutive_failures,
                "lastRefreshAt": state.refreshed_at_ms,
                "accountsCached": state.accounts_cached,
                "coolingDown": state.cooling_down,
                "retryAt": state.retry_at_ms,
            },
            "timestamp": wall_clock_ms(),
        }
        return json_response(200, body, NO_STORE)

    async def health(self, request: Request) -> Response:
        own, children = memory_rss()
        browser = self.browser
        body: HealthBody = {
            "status": "healthy",
            "version": __version__,
            "uptime": round(time.monotonic() - self._started, 3),
            "memory": {"rss": own, "browserRss": children, "totalRss": own + children},
            "browser": {
                "running": browser is not None and browser.running,
                "launches": browser.launches if browser is not None else 0,
                "executable": str(browser.executable) if browser and browser.executable else None,
            },
            "redis": _redis_health(self.service.shared_store_available),
            "timestamp": wall_clock_ms(),
        }
        return json_response(200, body, NO_STORE)

    async def metrics_text(self, request: Request) -> Response:
        return Response(200, self.metrics.render(), [("content-type", METRICS_CONTENT_TYPE), NO_STORE])

    async def openapi(self, request: Request) -> Response:
        return Response(200, self._openapi, [("content-type", "application/json")])

    async def swagger(self, request: Request) -> Response:
        return Response(200, SWAGGER_HTML.encode(), [("content-type", "text/html; charset=utf-8")])

    async def swagger_init(self, request: Request) -> Response:
        return Response(200, SWAGGER_INIT.encode(), [("content-type", "text/javascript")])

    async def swagger_asset(self, name: str, request: Request) -> Response:
        return Response(200, headers=[("content-type", SWAGGER_FILES[name])], file=str(SWAGGER_ASSETS / name))


def _redis_health(available: bool | None) -> RedisFields | None:
    return None if available is None else {"available": available}


def _invalid(error: InvalidParameter) -> Response:
    body: ValidationErrorBody = {
        "error": "Validation error",
        "details": str(error),
        "timestamp": wall_clock_ms(),
    }
    return json_response(400, body)


def _failure(error: TokenError, retry_after_max: float) -> Response:
    body: FailureBody = {"success": False, "error": str(error), "timestamp": wall_clock_ms()}
    extra: list[tuple[str, str]] = [NO_STORE]
    if error.retry_after is not None:
        extra.append(("retry-after", str(max(1, round(min(error.retry_after, retry_after_max))))))
    return json_response(error.status, body, *extra)


def create_app(settings: Settings, harvester: Harvester | None = None) -> App:
    """A new, isolated instance; pass ``harvester`` to run the API without a browser."""
    browser: BrowserManager | None = None
    if harvester is None:
        browser = BrowserManager(settings)
        harvester = PlaywrightHarvester(settings, browser)
    coordinator = _coordinator(settings)
    metrics = Metrics()
    service = TokenService(harvester, settings, coordinator=coordinator, observer=metrics.fetches)
    return App(service, browser, settings, metrics)


def _coordinator(settings: Settings) -> Coordinator:
    """Redis when configured (imported only then), else this process alone."""
    if not settings.redis_url.get_secret_value():
        return LocalCoordinator()
    from spotify_tokener.redis_coordinator import RedisCoordinator  # noqa: PLC0415

    return RedisCoordinator(settings)
