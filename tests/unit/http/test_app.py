"""The HTTP layer's own rules, dispatched in-process against an in-memory source."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from spotify_tokener.domain.errors import UpstreamError
from spotify_tokener.http.app import App, Request, Response
from spotify_tokener.http.params import InvalidParameter
from spotify_tokener.settings import Settings
from spotify_tokener.wiring import create_app
from tests.scripted import ScriptedSource, scripted_hashes
from tests.unit.conftest import FakeScope, RecordingProtocol, served
from tests.virtual_time import settle


def request(path: str, method: str = "GET", query: str = "") -> Request:
    return Request(method, path, query, {})


def app_with(source: ScriptedSource, settings: Settings) -> App:
    return create_app(settings, source, hashes=scripted_hashes)


def body(response: Response) -> dict[str, object]:
    parsed = orjson.loads(response.body)
    assert isinstance(parsed, dict)
    return parsed


async def status_of(app: App) -> dict[str, Any]:
    state = body(await app.dispatch(request("/api/token/status")))["status"]
    assert isinstance(state, dict)
    return state


@pytest.fixture
def app(unit_settings: Callable[..., Settings]) -> App:
    return app_with(ScriptedSource(), unit_settings())


async def test_token_shape_and_headers(app: App) -> None:
    response = await app.dispatch(request("/api/token"))
    assert response.status == 200
    assert ("cache-control", "no-store") in response.headers
    payload = body(response)
    assert set(payload) == {
        "success",
        "accessToken",
        "accessTokenExpirationTimestampMs",
        "clientId",
        "isAnonymous",
        "cached",
        "timestamp",
    }
    assert payload["success"] is True and payload["cached"] is False


async def test_bad_force_is_a_validation_error(app: App) -> None:
    response = await app.dispatch(request("/api/token", query="force=perhaps"))
    assert response.status == 400
    payload = body(response)
    assert payload["error"] == "Validation error"
    assert "force" in str(payload["details"])


async def test_unknown_path(app: App) -> None:
    response = await app.dispatch(request("/api/nope"))
    assert (response.status, body(response)["error"]) == (404, "Endpoint not found")


async def test_wrong_method_lists_the_allowed_ones(app: App) -> None:
    response = await app.dispatch(request("/api/token", method="DELETE"))
    assert response.status == 405
    assert ("allow", "GET, HEAD, OPTIONS") in response.headers


async def test_options_and_head(app: App) -> None:
    options = await app.dispatch(request("/api/token/refresh", method="OPTIONS"))
    assert options.status == 204
    assert ("allow", "OPTIONS, POST") in options.headers
    head = await app.dispatch(request("/health", method="HEAD"))
    assert head.status == 200


async def test_upstream_failure_is_a_short_json_cause(unit_settings: Callable[..., Settings]) -> None:
    source = ScriptedSource(default=UpstreamError("Spotify answered the token request with HTTP 500"))
    app = app_with(source, unit_settings(retries=0))
    response = await app.dispatch(request("/api/token"))
    assert response.status == 502
    assert body(response)["error"] == "Spotify answered the token request with HTTP 500"
    assert body(response)["success"] is False


async def test_a_bug_is_a_500_without_a_traceback(
    app: App, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "".join(["BQ-", "sec", "ret"])  # a runtime value, as real secrets are, not source text

    def broken() -> object:
        raise RuntimeError(f"internal detail {secret}")

    monkeypatch.setattr(app.service, "renewal_due_ms", broken)
    response = await app.dispatch(request("/api/token/status"))
    assert response.status == 500
    assert body(response)["error"] == "Internal server error"
    assert b"secret" not in response.body
    assert "RuntimeError" in caplog.text
    assert "broken" in caplog.text  # the stack is logged for whoever debugs it...
    assert "BQ-secret" not in caplog.text  # ...but not the message


async def test_each_route_is_served_and_documented_from_its_one_declaration(app: App) -> None:
    document = body(await app.dispatch(request("/openapi.json")))
    paths = document["paths"]
    assert isinstance(paths, dict)
    described = {(path, method.upper()) for path, operations in paths.items() for method in operations}
    assert described == {(route.path, route.method) for route in app.routes if route.document}
    assert {"/api/token", "/api/token/refresh", "/health", "/metrics"} <= set(paths)
    for route in app.routes:
        status = (await app.dispatch(request(route.path, method=route.method))).status
        assert status == (404 if route.path == "/api/metadata" else 200), route.path  # no type named
    assert "text/plain" in paths["/metrics"]["get"]["responses"]["200"]["content"]
    schemas = document["components"]
    assert isinstance(schemas, dict)
    assert {"TokenBody", "FailureBody", "StatusBody", "HealthBody"} <= set(schemas["schemas"])


def without_timestamp(raw: bytes) -> dict[str, object]:
    parsed = orjson.loads(raw)
    assert isinstance(parsed, dict)
    parsed.pop("timestamp")
    return parsed


async def test_the_fast_path_answers_exactly_like_the_router(app: App) -> None:
    await app.dispatch(request("/api/token"))  # a token in the cache
    fast_status, fast_headers, fast_body = await served(app, FakeScope("/api/token"))
    routed = await app.dispatch(request("/api/token", query="force=0"))
    assert fast_status == routed.status == 200
    assert fast_headers == routed.headers
    assert without_timestamp(fast_body) == without_timestamp(routed.body)
    assert without_timestamp(fast_body)["cached"] is True


async def test_the_fast_path_never_serves_a_cookie_a_query_or_another_method(
    unit_settings: Callable[..., Settings],
) -> None:
    source = ScriptedSource()
    app = app_with(source, unit_settings())
    await app.dispatch(request("/api/token"))
    with_cookie = await served(app, FakeScope("/api/token", headers={"cookie": "sp_dc=AQ-account"}))
    assert orjson.loads(with_cookie[2])["isAnonymous"] is False
    assert (await served(app, FakeScope("/api/token", query="force=1")))[2] != b""
    assert len(source.calls) == 3  # the anonymous fetch, the account, the forced one
    assert (await served(app, FakeScope("/api/token", method="POST")))[0] == 405


async def test_without_a_fresh_token_the_fast_path_steps_aside(
    unit_settings: Callable[..., Settings],
) -> None:
    source = ScriptedSource()
    app = app_with(source, unit_settings())
    status, _, body = await served(app, FakeScope("/api/token"))
    assert status == 200
    assert orjson.loads(body)["cached"] is False
    assert len(source.calls) == 1


def serve_until_ms(app: App) -> int:
    cached = app.service.anonymous.cached
    assert cached is not None
    return cached.serve_until_ms


def freeze_fast_path_clock(monkeypatch: pytest.MonkeyPatch, now_ms: int) -> None:
    monkeypatch.setattr("spotify_tokener.http.app.time_ns", lambda: now_ms * 1_000_000)


async def test_within_a_millisecond_the_fast_path_reuses_its_answer_but_never_an_old_token(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    await app.dispatch(request("/api/token"))
    freeze_fast_path_clock(monkeypatch, serve_until_ms(app) - 60_000)
    first = (await served(app, FakeScope("/api/token")))[2]
    assert (await served(app, FakeScope("/api/token")))[2] is first
    forced = body(await app.dispatch(request("/api/token", query="force=1")))
    after = orjson.loads((await served(app, FakeScope("/api/token")))[2])
    assert forced["accessToken"] != orjson.loads(first)["accessToken"]
    assert (after["accessToken"], after["cached"]) == (forced["accessToken"], True)


async def test_the_fast_path_serves_up_to_the_end_of_the_serving_window_and_not_after(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    await app.dispatch(request("/api/token"))
    last_ms = serve_until_ms(app) - 1
    freeze_fast_path_clock(monkeypatch, last_ms)
    assert orjson.loads((await served(app, FakeScope("/api/token")))[2])["timestamp"] == last_ms
    freeze_fast_path_clock(monkeypatch, last_ms + 1)
    routed = orjson.loads((await served(app, FakeScope("/api/token")))[2])
    assert routed["timestamp"] < last_ms  # the router's answer, stamped by the real clock


@pytest.fixture
def keyed(unit_settings: Callable[..., Settings]) -> App:
    return app_with(ScriptedSource(), unit_settings(api_key="alpha, beta"))


def with_headers(path: str, headers: dict[str, str], query: str = "", method: str = "GET") -> Request:
    return Request(method, path, query, headers)


async def test_with_a_key_set_every_endpoint_but_health_and_docs_needs_it(keyed: App) -> None:
    refused = await keyed.dispatch(request("/api/token"))
    assert refused.status == 401
    assert body(refused)["error"] == "missing or wrong API key"
    assert ("www-authenticate", "Bearer") in refused.headers
    for path, method in [("/api/token/status", "GET"), ("/api/token/refresh", "POST"), ("/nope", "GET")]:
        assert (await keyed.dispatch(request(path, method=method))).status == 401
    for path in ("/health", "/openapi.json", "/swagger"):
        assert (await keyed.dispatch(request(path))).status == 200


async def test_with_a_key_set_the_document_describes_it(app: App, keyed: App) -> None:
    open_document = body(await app.dispatch(request("/openapi.json")))
    document: Any = body(await keyed.dispatch(request("/openapi.json")))
    assert "security" not in open_document
    assert document["security"] == [{"bearer": []}, {"key": []}]
    key = document["components"]["securitySchemes"]["key"]
    assert (key["in"], key["name"]) == ("query", "key")
    assert "401" in document["paths"]["/api/token/status"]["get"]["responses"]
    assert document["paths"]["/health"]["get"]["security"] == []


async def test_the_key_as_bearer_or_query_parameter(keyed: App) -> None:
    bearer = await keyed.dispatch(with_headers("/api/token", {"authorization": "Bearer beta"}))
    in_query = await keyed.dispatch(request("/api/token", query="key=alpha"))
    wrong = await keyed.dispatch(request("/api/token", query="key=gamma"))
    assert (bearer.status, in_query.status, wrong.status) == (200, 200, 401)
    assert b"gamma" not in wrong.body


async def test_with_a_key_set_the_fast_path_steps_aside(keyed: App) -> None:
    await keyed.dispatch(request("/api/token", query="key=alpha"))  # a token in the cache
    status, _, raw = await served(keyed, FakeScope("/api/token"))
    assert status == 401
    assert b"accessToken" not in raw


async def test_status_says_when_it_is_cooling_down(unit_settings: Callable[..., Settings]) -> None:
    source = ScriptedSource(default=UpstreamError("Spotify answered the token request with HTTP 500"))
    app = app_with(source, unit_settings(retries=0, retry_base_delay=5))
    first = await app.dispatch(request("/api/token"))
    fast = await app.dispatch(request("/api/token"))
    state = await status_of(app)
    assert (first.status, fast.status) == (502, 502)
    assert len(source.calls) == 1  # the second answer came from the cool-down, at once
    retry_after = dict(fast.headers)["retry-after"]
    assert 1 <= int(retry_after) <= 5
    assert state["coolingDown"] is True
    assert isinstance(state["retryAt"], int)


async def test_status_follows_the_anonymous_token(app: App) -> None:
    empty = await status_of(app)
    assert (empty["hasToken"], empty["isValid"], empty["shouldProactivelyRefresh"], empty["expiresAt"]) == (
        False,
        False,
        True,
        None,
    )
    await app.dispatch(request("/api/token"))
    state = await status_of(app)
    assert state["hasToken"] and state["isValid"] and not state["shouldProactivelyRefresh"]
    assert 3_590_000 < state["timeUntilExpiry"] <= 3_600_000
    assert state["timeUntilProactiveRefresh"] == state["timeUntilExpiry"] - 600_000
    assert (state["consecutiveFailures"], state["lastError"], state["tokenSource"]) == (0, None, "injected")


class HiddenValueHeaders(dict[str, str]):
    """Like Granian's header map for a value that is not UTF-8: present, but with no value to read."""

    def __contains__(self, key: object) -> bool:
        return key == "cookie" or super().__contains__(key)


def test_an_unreadable_cookie_is_refused_not_ignored() -> None:
    with pytest.raises(InvalidParameter, match="not valid UTF-8"):
        Request("GET", "/api/token", "", HiddenValueHeaders()).cookie_headers()
    assert Request("GET", "/api/token", "", {}).cookie_headers() == []


async def test_a_client_that_hangs_up_stops_waiting(unit_settings: Callable[..., Settings]) -> None:
    source = ScriptedSource(delay=3600)  # a fetch that does not end during the test
    app = app_with(source, unit_settings())
    protocol = RecordingProtocol()
    scope = FakeScope("/api/token", headers={"cookie": "sp_dc=cookie-a"})
    waiting = asyncio.create_task(app.__rsgi__(scope, protocol))
    await settle()
    assert source.calls == ["cookie-a"]
    protocol.gone.set()
    await settle()
    assert waiting.done()
    assert protocol.sent[0][0] == 499  # to nobody: counted, as nginx does
    assert app.responses[("/api/token", 499)] == 1
    await app.service.stop()
