"""Schemathesis fuzzes the HTTP API from its own OpenAPI document, against the real server.

The fuzz targets the HTTP layer (parameters, cookies, keys, statuses, bodies, headers), so the
in-memory source stands in for the browser: thousands of requests, each forced one a "fetch",
in seconds. Three servers: a healthy one, one whose fetches keep failing in every upstream way,
and one locked with API keys and refusing account tokens.

Schemathesis' own pytest fixture loader (``from_fixture``) relies on a pytest attribute that
pytest 9 removed, so the document is loaded eagerly with ``build_openapi`` (what ``/openapi.json``
serves, which each server checks) and the servers come in through ordinary fixtures.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
from collections.abc import Iterator
from typing import Any, TypeAlias

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import unsupported_method

from spotify_tokener.core.hashes import Learn
from spotify_tokener.domain.errors import (
    BrowserError,
    BrowserMissing,
    FetchTimeout,
    RateLimited,
    TokenError,
    UpstreamError,
)
from spotify_tokener.domain.hashes import HashSet
from spotify_tokener.http.server import TokenerServer
from spotify_tokener.settings import Settings
from spotify_tokener.wiring import create_app
from tests.conftest import free_port
from tests.scripted import Outcome, ScriptedSource, scripted_hashes

Case: TypeAlias = schemathesis.Case[Any]

EXAMPLES = 150
API_KEY = "fuzz-key"
UPSTREAM_FAILURES: list[TokenError] = [
    UpstreamError("Spotify answered the token request with HTTP 500"),
    RateLimited("Spotify rate-limited the token request", retry_after=2),
    RateLimited("Spotify rate-limited the token request"),
    FetchTimeout("no token from Spotify within 2 s"),
    BrowserError("the browser crashed or closed during the fetch"),
    BrowserMissing("no Chromium found"),
]
UPSTREAM_CAUSES = {str(error) for error in UPSTREAM_FAILURES}
SERVER_ERROR = 500


@contextlib.contextmanager
def served_in_thread(
    settings_: Settings, source: ScriptedSource, hashes: Learn = scripted_hashes
) -> Iterator[str]:
    """The real server on its own event loop, so the synchronous fuzzer can call it."""
    server = TokenerServer(settings_, create_app(settings_, source, hashes=hashes))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(server.run(),), daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{settings_.port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                httpx.get(base + "/health")
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        assert httpx.get(base + "/openapi.json").json() == server.app.document
        yield base
    finally:
        loop.call_soon_threadsafe(server.stop)
        thread.join(15)
        loop.close()


def fuzz_settings(**overrides: Any) -> Settings:
    values = {
        "host": "127.0.0.1",
        "port": free_port(),
        "force_min_interval": 0.0,
        "retries": 0,
        "cooldown_max": 0.05,
        "new_accounts_per_minute": 1_000_000,  # each example brings a new cookie; admission is tested apart
        **overrides,
    }
    return Settings.build(**values)


@pytest.fixture(scope="module")
def healthy() -> Iterator[str]:
    with served_in_thread(fuzz_settings(), ScriptedSource()) as base:
        yield base


async def unreadable_hashes(known: HashSet | None) -> HashSet:
    raise UPSTREAM_FAILURES[0]


@pytest.fixture(scope="module")
def failing() -> Iterator[str]:
    """Every other fetch fails, each upstream way in turn."""
    outcomes: list[Outcome] = []
    for error in itertools.islice(itertools.cycle(UPSTREAM_FAILURES), 20_000):
        outcomes += [error, 3600.0]
    with served_in_thread(fuzz_settings(), ScriptedSource(*outcomes), unreadable_hashes) as base:
        yield base


@pytest.fixture(scope="module")
def locked() -> Iterator[str]:
    settings_ = fuzz_settings(api_key=f"other-key,{API_KEY}", allow_accounts=False)
    with served_in_thread(settings_, ScriptedSource()) as base:
        yield base


def filter_cookies(context: schemathesis.HookContext, cookies: dict[str, Any] | None) -> bool:
    """Skip cookie values no Cookie header can carry as such: a ';' ends the value, and the space or
    tab around it is not part of it (RFC 6265), so the server rightly reads something else."""
    value = (cookies or {}).get("sp_dc")
    return not isinstance(value, str) or (";" not in value and value == value.strip(" \t"))


schema = schemathesis.openapi.from_dict(create_app(fuzz_settings(), ScriptedSource()).document)
schema.hook(filter_cookies)
locked_schema = schemathesis.openapi.from_dict(
    create_app(fuzz_settings(api_key=API_KEY), ScriptedSource()).document
)
locked_schema.hook(filter_cookies)
fuzz = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))


@schema.parametrize()
@fuzz
def test_a_healthy_service_answers_every_request_as_documented(case: Case, healthy: str) -> None:
    case.call_and_validate(base_url=healthy)


@schema.parametrize()
@fuzz
def test_upstream_failures_are_the_only_5xx_and_are_documented(case: Case, failing: str) -> None:
    response = case.call(base_url=failing)
    case.validate_response(response, excluded_checks=[not_a_server_error])
    if response.status_code >= SERVER_ERROR:
        body = response.json()
        assert body["success"] is False
        assert body["error"] in UPSTREAM_CAUSES


@locked_schema.parametrize()
@fuzz
def test_a_locked_service_answers_every_request_as_documented(case: Case, locked: str) -> None:
    case.call_and_validate(base_url=locked, headers={"Authorization": f"Bearer {API_KEY}"})


@locked_schema.parametrize()
@fuzz
def test_a_locked_service_refuses_requests_without_a_key_as_documented(case: Case, locked: str) -> None:
    # The key is checked before the route: a wrong method without a key is a 401, not a 405.
    response = case.call_and_validate(base_url=locked, excluded_checks=[unsupported_method])
    assert (response.status_code == 401) is (case.path != "/health")  # health checks stay open
