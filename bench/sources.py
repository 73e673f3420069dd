"""`make bench-sources`: the direct source against the browser source, side by side in one run.

Starts the fake Spotify and one service per set-up: ``browser`` (the browser source alone),
``direct,browser`` (the default) and ``direct`` alone, plus the default with the secret pinned. For
each: the first token after a cold start (nothing learned, or the secret pinned), the tree's memory
at rest after it, then forced refreshes alternating between the services while a sampler records each
tree's peak memory (driver and Chromium included).
"""

from __future__ import annotations

import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import free_port  # noqa: E402
from tests.fake_spotify import FakeSpotify  # noqa: E402
from tests.fake_spotify.server import SECRET, SECRET_VERSION  # noqa: E402

from bench.measure import service_env, tree_rss_mb, wait_for  # noqa: E402
from bench.run import machine  # noqa: E402

ROUNDS = 20
COLUMNS = (
    "first token ms",
    "forced refresh median ms",
    "idle tree MB",
    "peak tree MB",
    "peak - idle",
    "served by",
)
COLUMNS = (
    "first token ms",
    "forced refresh median ms",
    "idle tree MB",
    "peak tree MB",
    "peak - idle",
    "served by",
)
SETUPS: dict[str, dict[str, str]] = {
    "browser": {"TOKENER_SOURCES": "browser"},
    "direct,browser": {"TOKENER_SOURCES": "direct,browser"},
    "direct": {"TOKENER_SOURCES": "direct"},
    "direct,browser pinned": {
        "TOKENER_SOURCES": "direct,browser",
        "TOKENER_TOTP_SECRET": SECRET,
        "TOKENER_TOTP_VERSION": str(SECRET_VERSION),
    },
}


@contextmanager
def service(fake: FakeSpotify, settings: dict[str, str]) -> Iterator[tuple[str, int, float]]:
    """A running service, its pid, and how long its first token took from the process start (ms)."""
    port = free_port()
    env = service_env(fake, port, TOKENER_LOG_LEVEL="WARNING", TOKENER_FORCE_MIN_INTERVAL="0", **settings)
    env["TOKENER_CA_FILE"] = str(fake.ca_file)  # the direct source checks the fake's certificate
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "spotify_tokener"], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(url + "/health", timeout_s=30)
        httpx.get(url + "/api/token", timeout=60).raise_for_status()
        yield url, process.pid, (time.perf_counter() - started) * 1000
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)


def served_by(url: str) -> str:
    source: str = httpx.get(url + "/api/token/status").json()["status"]["tokenSource"]
    return source


class PeakSampler(threading.Thread):
    def __init__(self, pids: dict[str, int]) -> None:
        super().__init__(daemon=True)
        self.pids = pids
        self.peaks = dict.fromkeys(pids, 0.0)
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.02):
            for name, pid in self.pids.items():
                self.peaks[name] = max(self.peaks[name], tree_rss_mb(pid))


def main() -> int:
    fake = FakeSpotify().start()
    timings: dict[str, list[float]] = {name: [] for name in SETUPS}
    try:
        with ExitStack() as stack:
            running = {
                name: stack.enter_context(service(fake, settings)) for name, settings in SETUPS.items()
            }
            time.sleep(2)  # the first fetch's background work (a relearn, a closing context) is over
            idle = {name: tree_rss_mb(pid) for name, (_, pid, _) in running.items()}
            sampler = PeakSampler({name: pid for name, (_, pid, _) in running.items()})
            sampler.start()
            for _ in range(ROUNDS):
                for name, (url, _, _) in running.items():
                    started = time.perf_counter()
                    httpx.get(url + "/api/token?force=1", timeout=60).raise_for_status()
                    timings[name].append((time.perf_counter() - started) * 1000)
            sampler.done.set()
            sampler.join()
            sources = {
                name: httpx.get(url + "/api/token/status").json()["status"]["tokenSource"]
                for name, (url, _, _) in running.items()
            }
    finally:
        fake.stop()
    print(f"\nmachine: {machine()}\n{ROUNDS} forced refreshes per set-up, alternating\n")
    print(f"| TOKENER_SOURCES | {' | '.join(COLUMNS)} |")
    print(f"| --- | {' | '.join('---' for _ in COLUMNS)} |")
    for name, (_, _, first_ms) in running.items():
        median, peak = statistics.median(timings[name]), sampler.peaks[name]
        figures = (first_ms, median, idle[name], peak, peak - idle[name])
        print(f"| {name} | {' | '.join(f'{figure:,.0f}' for figure in figures)} | {sources[name]} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
