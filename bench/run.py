"""`make bench`: every figure of issue 4 from one run, against the local fake Spotify.

Starts the real service (``python -m spotify_tokener``) twice. First as users run it, the default
``TOKENER_SOURCES``: start-up, its memory at rest once it has served tokens (the browser never
started), and load against the floor; load rounds alternate between the floor and the service, so
both see the same machine noise. Then with the browser source alone and Chromium pointed at the fake
(the same heavy page the tests use): the browser's first token, refreshes, memory, and a cold burst.
Prints one table and writes ``bench/results/latest.json``.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import free_port  # noqa: E402
from tests.fake_spotify import FakeSpotify  # noqa: E402

from bench.measure import (  # noqa: E402
    LoadResult,
    median,
    percentile,
    service_env,
    tree_pss_mb,
    tree_rss_mb,
    wait_for,
    wrk,
)
from spotify_tokener.settings import Settings  # noqa: E402
from spotify_tokener.sources.browser.chromium import find_executable  # noqa: E402

IDLE_S = 3
REFRESHES = 7
COLD_REFRESHES = 5
LOAD_ROUNDS = 10
LOAD_SECONDS = 3
WARMUP_SECONDS = 3
BURST = 200
DEFAULT_SOURCES = Settings().sources
TARGETS = {  # figure: (limit, "max" or "min")
    "idle_mb": (55, "max"),  # half the original's
    "rps_ratio": (0.9, "min"),
    "p99_ms": (5.0, "max"),
    "browser_first_token_s": (1.8, "max"),
    "browser_refresh_ms": (500, "max"),
    "browser_cold_refresh_ms": (900, "max"),
    "browser_idle_mb": (80, "max"),
    "burst_upstream": (1, "max"),
}
SEED = {
    "idle_mb": 110,
    "rps": 41_000,
    "p99_ms": 4.3,
    "browser_first_token_s": 1.8,
    "browser_refresh_ms": 1425,
}


@dataclass
class Service:
    process: subprocess.Popen[bytes]
    url: str
    started: float

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, timeout=60)

    def browser_running(self) -> bool:
        return bool(self.get("/health").json()["browser"]["running"])


@dataclass
class Results:
    figures: dict[str, float] = field(default_factory=dict)
    rounds: dict[str, list[float]] = field(default_factory=dict)


@contextmanager
def service(fake: FakeSpotify, **settings: str) -> Iterator[Service]:
    port = free_port()
    env = service_env(
        fake,
        port,
        TOKENER_BROWSER_IDLE=str(IDLE_S),
        TOKENER_LOG_LEVEL="WARNING",
        TOKENER_FORCE_MIN_INTERVAL="0",  # the refreshes are forced back to back on purpose
        **settings,
    )
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "spotify_tokener"], env=env)
    try:
        yield Service(process, f"http://127.0.0.1:{port}", started)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)


@contextmanager
def floor(body: bytes) -> Iterator[tuple[str, int]]:
    port = free_port()
    with tempfile.NamedTemporaryFile(suffix=".json") as body_file:
        body_file.write(body)
        body_file.flush()
        command = [
            sys.executable,
            str(ROOT / "bench" / "floor.py"),
            "--port",
            str(port),
            "--body",
            body_file.name,
        ]
        process = subprocess.Popen(command)
        try:
            url = f"http://127.0.0.1:{port}/api/token"
            wait_for(url, timeout_s=10)
            yield url, process.pid
        finally:
            process.terminate()
            process.wait(timeout=10)


def wait_idle(svc: Service) -> None:
    deadline = time.monotonic() + IDLE_S + 15
    while svc.browser_running():
        if time.monotonic() > deadline:
            raise TimeoutError("the browser was not closed for idleness")
        time.sleep(0.2)
    time.sleep(1)


def timed_force(svc: Service) -> float:
    started = time.perf_counter()
    response = svc.get("/api/token?force=1")
    response.raise_for_status()
    return (time.perf_counter() - started) * 1000


def as_users_run_it(fake: FakeSpotify, results: Results) -> None:
    """The default sources (the direct one trusts the fake through its CA file): start-up, memory at
    rest once tokens were served and a refresh forced, then the cached answer under load."""
    figures = results.figures
    with service(fake, TOKENER_SOURCES=DEFAULT_SOURCES, TOKENER_CA_FILE=str(fake.ca_file)) as svc:
        figures["ready_s"] = wait_for(svc.url + "/health", timeout_s=30) - svc.started
        svc.get("/api/token").raise_for_status()
        figures["first_token_s"] = time.monotonic() - svc.started
        timed_force(svc)
        time.sleep(IDLE_S)  # at rest: nothing asked, nothing due
        if svc.get("/health").json()["browser"]["launches"]:
            raise RuntimeError("the browser started: the figures would not be the steady state's")
        figures["idle_mb"] = tree_rss_mb(svc.process.pid)
        load(svc, results)


def through_the_browser(fake: FakeSpotify, results: Results) -> None:
    """The browser source alone (``service_env``'s default): what a token costs when Chromium fetches it."""
    figures = results.figures
    with service(fake) as svc:
        wait_for(svc.url + "/health", timeout_s=30)
        svc.get("/api/token").raise_for_status()
        figures["browser_first_token_s"] = time.monotonic() - svc.started
        figures["browser_refresh_ms"] = median([timed_force(svc) for _ in range(REFRESHES)])
        figures["browser_busy_mb"] = tree_rss_mb(svc.process.pid)
        figures["browser_busy_pss_mb"] = tree_pss_mb(svc.process.pid)
        wait_idle(svc)
        figures["browser_idle_mb"] = tree_rss_mb(svc.process.pid)
        cold = []
        for _ in range(COLD_REFRESHES):
            wait_idle(svc)
            cold.append(timed_force(svc))
        figures["browser_cold_refresh_ms"] = median(cold)


def load(svc: Service, results: Results) -> None:
    """Rounds alternate between the floor and the service, and each round's pair gives one ratio.

    Pairing is what makes the ratio steady on a shared machine: the load of the neighbours drifts
    over seconds, so two rounds taken back to back see nearly the same machine, where the medians of
    all rounds of each would not. The ratio reported is the median of the pairs' ratios.
    """
    body = svc.get("/api/token").content
    ours: list[LoadResult] = []
    bare: list[LoadResult] = []
    service_target = (svc.url + "/api/token", svc.process.pid)
    with floor(body) as floor_target:
        for url, pid in (floor_target, service_target):  # a fresh server's first round runs hot
            wrk(url, WARMUP_SECONDS, pid)
        for round_number in range(LOAD_ROUNDS):
            pair = [(bare, floor_target), (ours, service_target)]
            for collected, (url, pid) in pair if round_number % 2 == 0 else reversed(pair):
                collected.append(wrk(url, LOAD_SECONDS, pid))
    pairs = list(zip(ours, bare, strict=True))
    ratios = [mine.rps / theirs.rps for mine, theirs in pairs]
    cpu_ratios = [theirs.cpu_us_per_request / mine.cpu_us_per_request for mine, theirs in pairs]
    results.rounds = {"floor_rps": [r.rps for r in bare], "rps": [r.rps for r in ours], "rps_ratio": ratios}
    figures = results.figures
    figures["rps"] = median([r.rps for r in ours])
    figures["p99_ms"] = median([r.p99_ms for r in ours])
    figures["floor_rps"] = median([r.rps for r in bare])
    figures["floor_p99_ms"] = median([r.p99_ms for r in bare])
    figures["rps_ratio"] = median(ratios)
    figures["cpu_us_per_request"] = median([r.cpu_us_per_request for r in ours])
    figures["floor_cpu_us_per_request"] = median([r.cpu_us_per_request for r in bare])
    figures["cpu_ratio"] = median(cpu_ratios)


async def burst(url: str) -> list[float]:
    limits = httpx.Limits(max_connections=BURST)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:

        async def one() -> float:
            started = time.perf_counter()
            (await client.get("/api/token")).raise_for_status()
            return (time.perf_counter() - started) * 1000

        return await asyncio.gather(*(one() for _ in range(BURST)))


def cold_burst(fake: FakeSpotify, results: Results) -> None:
    fake.reset()
    with service(fake) as svc:
        wait_for(svc.url + "/health", timeout_s=30, interval_s=0.001)
        latencies = asyncio.run(burst(svc.url))
    results.figures["burst_upstream"] = fake.token_requests
    results.figures["burst_p50_ms"] = percentile(latencies, 0.5)
    results.figures["burst_p99_ms"] = percentile(latencies, 0.99)


def verdicts(figures: dict[str, float]) -> dict[str, bool]:
    return {
        name: figures[name] <= limit if kind == "max" else figures[name] >= limit
        for name, (limit, kind) in TARGETS.items()
    }


def table(figures: dict[str, float]) -> str:
    checks = verdicts(figures)
    lines = ["| figure | value | target | seed | ok |", "| --- | ---: | ---: | ---: | :---: |"]
    for name, value in figures.items():
        limit = TARGETS.get(name)
        target = f"{'<=' if limit[1] == 'max' else '>='} {limit[0]:g}" if limit else ""
        seed = f"{SEED[name]:g}" if name in SEED else ""
        ok = ("yes" if checks[name] else "NO") if name in checks else ""
        lines.append(f"| {name} | {value:,.2f} | {target} | {seed} | {ok} |")
    return "\n".join(lines)


def machine() -> str:
    """The machine, and the browser the service launches unless told otherwise (by its version and file)."""
    with sync_playwright() as playwright:
        executable = find_executable(None, playwright.chromium.executable_path)
    version = subprocess.run([executable, "--version"], capture_output=True, text=True, check=False).stdout
    chromium = f"{version.strip() or 'Chromium (version unknown)'} ({executable.name})"
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {chromium}"


def main() -> int:
    fake = FakeSpotify().start()
    results = Results()
    try:
        as_users_run_it(fake, results)
        through_the_browser(fake, results)
        cold_burst(fake, results)
    finally:
        fake.stop()
    print(f"\nmachine: {machine()}\n")
    print(table(results.figures))
    print("\nload rounds:")
    for name, values in results.rounds.items():
        shown = (f"{v:.2f}" if name.endswith("ratio") else f"{v:,.0f}" for v in values)
        print(f"  {name}: {', '.join(shown)}")
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(
        json.dumps({"machine": machine(), **results.figures, "rounds": results.rounds}, indent=2)
    )
    return 0 if all(verdicts(results.figures).values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
