"""What /metrics reports, driven through ``App.__rsgi__`` against an in-memory source."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from spotify_tokener.core.proxies import NO_PROXY
from spotify_tokener.domain.errors import (
    BrowserError,
    BrowserMissing,
    FetchTimeout,
    RateLimited,
    TokenError,
    UpstreamError,
)
from spotify_tokener.domain.token import Token
from spotify_tokener.http.app import App
from spotify_tokener.metrics import Metrics
from spotify_tokener.settings import Settings
from spotify_tokener.wiring import create_app
from tests.prometheus import Scrape
from tests.scripted import ScriptedSource
from tests.unit.conftest import FakeScope, served

SettingsMaker = Callable[..., Settings]
COOKIE = "AQ-metrics-cookie-value"


async def scrape(app: App, headers: dict[str, str] | None = None) -> Scrape:
    status, sent_headers, raw = await served(app, FakeScope("/metrics", headers=headers))
    assert status == 200
    assert dict(sent_headers)["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return Scrape(raw.decode())


async def test_hits_on_the_fast_path_and_the_router_and_misses(unit_settings: SettingsMaker) -> None:
    app = create_app(unit_settings(), ScriptedSource())
    assert (await served(app, FakeScope("/api/token")))[0] == 200  # nothing cached: a fetch
    for _ in range(3):
        await served(app, FakeScope("/api/token"))  # the fast path
    await served(app, FakeScope("/api/token", query="force=0"))  # a hit through the router
    found = await scrape(app)
    assert found.value("tokener_token_requests_total", kind="anonymous", result="miss") == 1
    assert found.value("tokener_token_requests_total", kind="anonymous", result="hit") == 4
    assert found.value("tokener_token_requests_total", kind="anonymous", result="error") == 0
    assert found.value("tokener_http_requests_total", route="/api/token", status="200") == 5
    assert found.value("tokener_fetch_attempts_total", kind="anonymous", outcome="ok") == 1
    assert found.types["tokener_token_requests"] == "counter"


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (UpstreamError("Spotify answered the token request with HTTP 500"), "upstream"),
        (RateLimited("rate-limited by Spotify", retry_after=1), "rate_limited"),
        (FetchTimeout("no token from Spotify within 20 s"), "timeout"),
        (BrowserError("the browser failed to start"), "browser"),
        (BrowserMissing("no Chromium found"), "browser_missing"),
    ],
)
async def test_a_failed_attempt_is_counted_under_its_errors_outcome(
    unit_settings: SettingsMaker, error: TokenError, outcome: str
) -> None:
    app = create_app(unit_settings(retries=0), ScriptedSource(error))
    status, _, _ = await served(app, FakeScope("/api/token"))
    found = await scrape(app)
    assert status == error.status
    assert found.value("tokener_fetch_attempts_total", kind="anonymous", outcome=outcome) == 1
    assert found.total("tokener_fetch_attempts_total") == 1
    assert found.value("tokener_fetch_duration_seconds_count", kind="anonymous", outcome=outcome) == 1
    assert found.value("tokener_token_requests_total", kind="anonymous", result="error") == 1
    assert found.value("tokener_http_requests_total", route="/api/token", status=str(status)) == 1


class CrashingSource:
    async def attempt(self, sp_dc: str | None = None) -> Token:
        raise RuntimeError(f"a library bug quoting {sp_dc}")


async def test_a_crash_is_counted_as_internal_without_its_message(unit_settings: SettingsMaker) -> None:
    app = create_app(unit_settings(retries=0), CrashingSource())
    status, _, _ = await served(app, FakeScope("/api/token", headers={"cookie": f"sp_dc={COOKIE}"}))
    found = await scrape(app)
    assert status == 500
    assert found.value("tokener_fetch_attempts_total", kind="account", outcome="internal") == 1
    assert found.value("tokener_token_requests_total", kind="account", result="error") == 1
    assert COOKIE not in found.text
    assert "library bug" not in found.text


async def test_retries_are_counted_and_every_attempt_is_timed(unit_settings: SettingsMaker) -> None:
    failure = UpstreamError("Spotify answered the token request with HTTP 500")
    app = create_app(unit_settings(retries=3), ScriptedSource(failure, failure))
    assert (await served(app, FakeScope("/api/token")))[0] == 200
    found = await scrape(app)
    assert found.value("tokener_fetch_attempts_total", kind="anonymous", outcome="upstream") == 2
    assert found.value("tokener_fetch_attempts_total", kind="anonymous", outcome="ok") == 1
    assert found.value("tokener_fetch_retries_total", kind="anonymous") == 2
    assert found.value("tokener_fetch_retries_total", kind="account") == 0
    assert found.total("tokener_fetch_duration_seconds_count") == 3
    buckets = found.label_values("tokener_fetch_duration_seconds_bucket", "le")
    assert {"0.2", "1.0", "20.0", "+Inf"} <= buckets


async def test_unknown_paths_collapse_into_one_route(unit_settings: SettingsMaker) -> None:
    app = create_app(unit_settings(), ScriptedSource())
    probes = [f"/wp-admin/{n}.php" for n in range(50)] + ["/.env", "/api/tokens"]
    for path in probes:
        assert (await served(app, FakeScope(path)))[0] == 404
    assert (await served(app, FakeScope("/api/token", method="DELETE")))[0] == 405
    found = await scrape(app)
    assert found.label_values("tokener_http_requests_total", "route") == {"other", "/api/token"}
    assert found.value("tokener_http_requests_total", route="other", status="404") == len(probes)
    assert found.value("tokener_http_requests_total", route="/api/token", status="405") == 1
    assert "wp-admin" not in found.text
    assert ".env" not in found.text


async def test_accounts_are_a_count_and_nothing_secret_shows(unit_settings: SettingsMaker) -> None:
    source = ScriptedSource()
    app = create_app(unit_settings(), source)
    cookie = {"cookie": f"sp_dc={COOKIE}"}
    for _ in range(2):
        assert (await served(app, FakeScope("/api/token", headers=cookie)))[0] == 200
    await served(app, FakeScope("/api/token"))
    found = await scrape(app)
    assert found.value("tokener_accounts_cached") == 1
    assert found.value("tokener_fetch_attempts_total", kind="account", outcome="ok") == 1
    assert found.value("tokener_token_requests_total", kind="account", result="miss") == 1
    assert found.value("tokener_token_requests_total", kind="account", result="hit") == 1
    assert COOKIE not in found.text
    assert "BQ-" not in found.text  # no token either (the source's all start so)
    assert len(source.calls) == 2


async def test_token_expiry_and_the_browser(unit_settings: SettingsMaker) -> None:
    app = create_app(unit_settings(), ScriptedSource(default=1800.0))
    before = await scrape(app)
    await served(app, FakeScope("/api/token"))
    after = await scrape(app)
    assert before.value("tokener_token_expires_in_seconds") == 0
    assert before.value("tokener_token_valid") == 0
    assert 1790 < after.value("tokener_token_expires_in_seconds") <= 1800
    assert after.value("tokener_token_valid") == 1
    assert after.value("tokener_browser_running") == 0  # no browser behind this source
    assert after.value("tokener_browser_launches_total") == 0
    assert after.value("tokener_build_info", version="0.1.0") == 1


async def test_each_app_counts_on_its_own_registry(unit_settings: SettingsMaker) -> None:
    busy = create_app(unit_settings(), ScriptedSource())
    quiet = create_app(unit_settings(), ScriptedSource())
    await served(busy, FakeScope("/api/token"))
    assert (await scrape(busy)).value("tokener_fetch_attempts_total", outcome="ok", kind="anonymous") == 1
    assert (await scrape(quiet)).total("tokener_fetch_attempts_total") == 0
    assert busy.metrics is not quiet.metrics


async def test_with_a_key_set_metrics_need_it(unit_settings: SettingsMaker) -> None:
    app = create_app(unit_settings(api_key="scrape-key"), ScriptedSource())
    refused = await served(app, FakeScope("/metrics"))
    assert refused[0] == 401
    found = await scrape(app, headers={"authorization": "Bearer scrape-key"})
    assert found.value("tokener_http_requests_total", route="/metrics", status="401") == 1
    assert "scrape-key" not in found.text


def test_the_names_before_0_2_are_still_exported_beside_the_new_ones() -> None:
    metrics = Metrics()
    metrics.fetches.proxy_ended(NO_PROXY, "ok")
    metrics.fetches.proxy_ended("http://a:3128", "refused")
    metrics.fetches.source_ended("direct", "anonymous", "not_ready")
    found = Scrape(metrics.render().decode())
    assert found.value("tokener_proxy_tries_total", proxy="none", outcome="ok") == 1
    assert found.value("tokener_exit_attempts_total", exit="direct", outcome="ok") == 1
    assert found.value("tokener_exit_attempts_total", exit="http://a:3128", outcome="refused") == 1
    assert (
        found.value("tokener_source_tries_total", source="direct", kind="anonymous", outcome="not_ready") == 1
    )
    assert (
        found.value("tokener_source_attempts_total", source="direct", kind="anonymous", outcome="not_ready")
        == 1
    )
