"""Prometheus metrics for one app instance, on a registry of its own.

Counting is split by cost: what happens on every request is counted by the app in plain ints and
turned into families only when Prometheus scrapes; fetch attempts are rare, so they use the library's
Counter and Histogram; state is read at scrape time. Every label value is a fixed word or one of the
API's own paths: never a token, a cookie, or a path a client made up.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import partial

from prometheus_client import CollectorRegistry, Counter, Histogram, Info, ProcessCollector, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from spotify_tokener import __version__
from spotify_tokener.core.hashes import OUTCOMES
from spotify_tokener.core.ports import OUTCOME_OK
from spotify_tokener.core.proxies import NO_PROXY
from spotify_tokener.core.standing import Standing
from spotify_tokener.domain.clock import wall_clock_ms
from spotify_tokener.domain.errors import ATTEMPT_FAILURES
from spotify_tokener.domain.token import KINDS, Kind
from spotify_tokener.http.app import ERROR, HIT, MISS, OTHER_ROUTE, TOKEN_PATH, App

ATTEMPT_OUTCOMES = (OUTCOME_OK, *(failure.outcome for failure in ATTEMPT_FAILURES))
# Bucket bounds around the attempt durations BENCHMARKS.md reports, past the default attempt timeouts.
FETCH_BUCKETS = (0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0)


class FetchMetrics:
    """The core's :class:`~spotify_tokener.core.ports.FetchObserver`: one report per attempt."""

    def __init__(self, registry: CollectorRegistry) -> None:
        counter = partial(Counter, registry=registry)
        self._attempts = counter(
            "tokener_fetch_attempts",
            "Token fetch attempts (each retry is one), by kind of token and outcome.",
            ["kind", "outcome"],
        )
        self._seconds = Histogram(
            "tokener_fetch_duration_seconds",
            "How long one token fetch attempt took, by kind of token and outcome.",
            ["kind", "outcome"],
            buckets=FETCH_BUCKETS,
            registry=registry,
        )
        self._retries = counter(
            "tokener_fetch_retries",
            "Fetch attempts that were retries of a failed one, by kind of token.",
            ["kind"],
        )
        self._proxies = counter(
            "tokener_proxy_tries",
            "Tries through each proxy (scheme://host:port, or none), by outcome.",
            ["proxy", "outcome"],
        )
        self._sources = counter(
            "tokener_source_tries",
            "Each token source's try within an attempt (TOKENER_SOURCES), by kind of token and outcome.",
            ["source", "kind", "outcome"],
        )
        # The names before 0.2, exported beside the new ones for one release (CHANGELOG).
        self._exits = counter(
            "tokener_exit_attempts", "Deprecated: tokener_proxy_tries.", ["exit", "outcome"]
        )
        self._old_sources = counter(
            "tokener_source_attempts", "Deprecated: tokener_source_tries.", ["source", "kind", "outcome"]
        )
        for kind in KINDS:
            self._retries.labels(kind)
            for outcome in ATTEMPT_OUTCOMES:
                self._attempts.labels(kind, outcome)

    def attempt_ended(self, kind: Kind, outcome: str, seconds: float, attempt: int) -> None:
        self._attempts.labels(kind, outcome).inc()
        self._seconds.labels(kind, outcome).observe(seconds)
        if attempt > 1:
            self._retries.labels(kind).inc()

    def proxy_ended(self, proxy_label: str, outcome: str) -> None:
        self._proxies.labels(proxy_label, outcome).inc()
        self._exits.labels("direct" if proxy_label == NO_PROXY else proxy_label, outcome).inc()

    def source_ended(self, source: str, kind: Kind, outcome: str) -> None:
        self._sources.labels(source, kind, outcome).inc()
        self._old_sources.labels(source, kind, outcome).inc()


@dataclass(frozen=True, slots=True)
class StateCollector:
    """What one app shows, read when Prometheus scrapes."""

    app: App

    def collect(self) -> Iterator[Metric]:
        app, service, browser = self.app, self.app.shown.service, self.app.shown.browser
        http = CounterMetricFamily(
            "tokener_http_requests",
            f"HTTP requests answered, by route ({OTHER_ROUTE!r}: any path not served) and status.",
            labels=["route", "status"],
        )
        responses = app.responses + collections.Counter({(TOKEN_PATH, 200): app.hot_answers})
        for (route, status), value in sorted(responses.items()):
            http.add_metric([route, str(status)], value)
        yield http
        answers = CounterMetricFamily(
            "tokener_token_requests",
            "Token requests (GET /api/token, POST /api/token/refresh) by kind of token and result: "
            "hit (answered from the cache), miss (waited for a fetch), error (no token given).",
            labels=["kind", "result"],
        )
        answered = {(kind, result): 0 for kind in KINDS for result in (HIT, MISS, ERROR)} | app.token_answers
        answered["anonymous", HIT] += app.hot_answers
        for (kind, result), value in answered.items():
            answers.add_metric([kind, result], value)
        yield answers
        token, now_ms = service.anonymous.token, wall_clock_ms()
        yield GaugeMetricFamily(
            "tokener_token_expires_in_seconds",
            "Seconds until the cached anonymous token expires; 0 when there is none.",
            value=max(token.remaining_ms(now_ms), 0) / 1000 if token else 0,
        )
        yield GaugeMetricFamily(
            "tokener_token_valid",
            "1 while the anonymous token is served from the cache (more than TOKENER_EXPIRY_BUFFER left).",
            value=int(service.freshness.is_servable(token, now_ms)),
        )
        yield GaugeMetricFamily(
            "tokener_accounts_cached", "Accounts with a cached token.", value=service.accounts.count()
        )
        if (redis_available := service.coordinator.available) is not None:
            yield GaugeMetricFamily(
                "tokener_redis_available",
                "1 while Redis (TOKENER_REDIS_URL) answers; 0 while this replica fetches on its own.",
                value=int(redis_available),
            )
        yield GaugeMetricFamily(
            "tokener_browser_running",
            "1 while Chromium is running (it is closed after TOKENER_BROWSER_IDLE).",
            value=int(browser is not None and browser.running),
        )
        yield CounterMetricFamily(
            "tokener_browser_launches",
            "Times Chromium was started (on demand, after idleness or a crash).",
            value=browser.launches if browser is not None else 0,
        )
        if app.shown.proxies is not None:
            proxies = {state.proxy.label: state for state in app.shown.proxies.states()}
            doc = "1 while a proxy cools down after failing (TOKENER_PROXY_COOLDOWN), by proxy."
            yield _cooling_down("tokener_proxy_cooling_down", doc, "proxy", proxies)
            yield _cooling_down(
                "tokener_exit_benched", "Deprecated: tokener_proxy_cooling_down.", "exit", proxies
            )
        sources = {state.name: state for state in app.shown.chain.states()}
        doc = "1 while a token source cools down after falling through (TOKENER_SOURCE_COOLDOWN)."
        yield _cooling_down("tokener_source_cooling_down", doc, "source", sources)
        yield _cooling_down(
            "tokener_source_benched", "Deprecated: tokener_source_cooling_down.", "source", sources
        )
        hashes = app.hash_keeper
        if hashes.current is not None:
            yield GaugeMetricFamily(
                "tokener_hashes_age_seconds",
                "Seconds since the web player's page last showed the bundle the served hashes come from.",
                value=max(0.0, wall_clock_ms() / 1000 - hashes.current.updated_at),
            )
        relearns = CounterMetricFamily(
            "tokener_hashes_relearns",
            "Readings of the hashes, by outcome: learned (a new bundle), unchanged (the same bundle), "
            "replica (another replica's newer set), failed.",
            labels=["outcome"],
        )
        for outcome in OUTCOMES:
            relearns.add_metric([outcome], hashes.relearns[outcome])
        yield relearns
        yield CounterMetricFamily(
            "tokener_hashes_stale_reports",
            "Hashes clients reported refused (GET /api/hashes?stale=), served or not.",
            value=hashes.stale_reports,
        )


def _cooling_down(name: str, documentation: str, label: str, standings: Mapping[str, Standing]) -> Metric:
    family = GaugeMetricFamily(name, documentation, labels=[label])
    now = wall_clock_ms()
    for value, standing in standings.items():
        family.add_metric([value], int(not standing.usable(now)))
    return family


class Metrics:
    """One app instance's registry: fetch metrics from the start, the rest once ``StateCollector`` reads
    the app."""

    content_type = CONTENT_TYPE_PLAIN_0_0_4  # the classic text format every Prometheus reads

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.fetches = FetchMetrics(self.registry)
        ProcessCollector(registry=self.registry)
        Info("tokener_build", "The running version.", registry=self.registry).info({"version": __version__})

    def render(self) -> bytes:
        return generate_latest(self.registry)
