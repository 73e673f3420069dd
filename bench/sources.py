"""`make bench-sources`: the token sources side by side in one run.

Starts the fake Spotify and one service per set-up: ``browser`` (the browser source alone),
``direct,browser`` (the default before the embed source), ``direct`` and ``embed`` alone, and
``direct,embed,browser`` (the default), plus ``direct,browser`` with the secret pinned. For each: the
first token after a cold start (nothing learned, or the secret pinned), the tree's memory at rest
after it, then forced refreshes alternating between the services while a sampler records each tree's
peak memory (driver and Chromium included). Then cold starts of the default with the secret written
plainly and assembled at run time (only a browser can learn it): which source served first, and when
the direct source knew the secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import free_port  # noqa: E402
from tests.fake_spotify import FakeSpotify  # noqa: E402
from tests.fake_spotify.assets import SecretShape  # noqa: E402
from tests.fake_spotify.server import SECRET, SECRET_VERSION  # noqa: E402

from bench.measure import MB, service_env, tree_rss_mb, wait_for  # noqa: E402
from bench.run import machine  # noqa: E402
from spotify_tokener.settings import Settings  # noqa: E402
from spotify_tokener.wiring import create_app  # noqa: E402

ROUNDS = 20
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
    "embed": {"TOKENER_SOURCES": "embed"},
    "direct,embed,browser": {"TOKENER_SOURCES": "direct,embed,browser"},
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


def learned_from_memory(fake: FakeSpotify, shape: SecretShape) -> tuple[float, str, float, float, float]:
    """A cold start of the default set-up with the secret written as ``shape``: ms to the first token
    from the process start and the source that served it, ms until the direct source knew the secret,
    and the service process's own RSS (MB) at rest before and at its peak until then (the page's
    memory streams through it when the scripts' text holds no secret)."""
    fake.reset()
    fake.write_secret_as(shape)
    port = free_port()
    env = service_env(fake, port, TOKENER_LOG_LEVEL="WARNING", TOKENER_SOURCES="direct,embed,browser")
    env["TOKENER_CA_FILE"] = str(fake.ca_file)
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "spotify_tokener"], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(url + "/health", timeout_s=30)
        rest = psutil.Process(process.pid).memory_info().rss / MB
        sampler = PeakSampler({"service": process.pid}, tree=False)
        sampler.start()
        httpx.get(url + "/api/token", timeout=60).raise_for_status()
        first_ms, first_by = (time.perf_counter() - started) * 1000, served_by(url)
        while httpx.get(url + "/api/token/status").json()["status"]["direct"]["totpVersion"] is None:
            time.sleep(0.01)
        learned_ms = (time.perf_counter() - started) * 1000
        sampler.done.set()
        sampler.join()
        return first_ms, first_by, learned_ms, rest, sampler.peaks["service"]
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)


RESTART_RUNS = 5
COUNTED = ("page", "bundle", "token")
RESTART_CASES = {"nothing": "cold start", "secret": "restart, secret kept", "all": "restart, token kept too"}


async def first_token_after_restart(fake: FakeSpotify, state_dir: Path, kept: str) -> tuple[float, ...]:
    """One start of the default set-up, in this process (Python's start-up and imports left out: on a
    busy machine they drown the rest), with ``state_dir`` holding ``kept`` (``nothing``; ``secret``,
    what was learned but no token, as if it had expired; or ``all``): ms from the service's start to
    its first token, and the pages, bundles, token calls and browser launches that cost."""
    if kept == "nothing":
        shutil.rmtree(state_dir, ignore_errors=True)
    elif kept == "secret":
        (state_dir / "token.json").unlink(missing_ok=True)
    before = [fake.count(what) for what in COUNTED]
    settings = Settings.build(
        sources="direct,browser",
        connect_to=fake.connect_to,
        ca_file=fake.ca_file,
        state_dir=state_dir,
        log_level="WARNING",
    )
    started = time.perf_counter()
    app = create_app(settings)
    async with app.lifespan():
        await app.service.get_token()
        first_ms = (time.perf_counter() - started) * 1000
        launches = app.shown.browser.launches if app.shown.browser is not None else 0
    counts = (fake.count(what) - was for what, was in zip(COUNTED, before, strict=True))
    return first_ms, *counts, launches


async def restart_runs(fake: FakeSpotify, folder: Path) -> dict[str, list[tuple[float, ...]]]:
    runs: dict[str, list[tuple[float, ...]]] = {kept: [] for kept in RESTART_CASES}
    await first_token_after_restart(fake, folder, "nothing")  # imports and first connections, not timed
    for _ in range(RESTART_RUNS):
        for kept in RESTART_CASES:  # each restart finds what the start before it kept
            runs[kept].append(await first_token_after_restart(fake, folder, kept))
    return runs


def restarts() -> None:
    """``make bench-sources``' part on the state folder: a cold start against two restarts."""
    fake = FakeSpotify().start()
    try:
        with tempfile.TemporaryDirectory() as folder:
            runs = asyncio.run(restart_runs(fake, Path(folder) / "state"))
    finally:
        fake.stop()
    print(
        f"\nThe default set-up started with a state folder (TOKENER_STATE_DIR), median of {RESTART_RUNS}:\n"
    )
    columns = ("start", "first token ms", "pages", "bundles", "token calls", "browsers")
    print(f"| {' | '.join(columns)} |\n|{' --- |' * len(columns)}")
    for kept, name in RESTART_CASES.items():
        first_ms = statistics.median(run[0] for run in runs[kept])
        counts = " | ".join(f"{max(run[i] for run in runs[kept]):.0f}" for i in range(1, 5))
        print(f"| {name} | {first_ms:,.1f} | {counts} |")


def served_by(url: str) -> str:
    source: str = httpx.get(url + "/api/token/status").json()["status"]["tokenSource"]
    return source


class PeakSampler(threading.Thread):
    """Each process's (or process tree's) highest RSS, in MB, read every 20 ms until ``done``."""

    def __init__(self, pids: dict[str, int], *, tree: bool = True) -> None:
        super().__init__(daemon=True)
        self.pids = pids
        self.tree = tree
        self.peaks = dict.fromkeys(pids, 0.0)
        self.done = threading.Event()

    def run(self) -> None:
        while True:
            for name, pid in self.pids.items():
                with contextlib.suppress(psutil.Error):
                    rss = tree_rss_mb(pid) if self.tree else psutil.Process(pid).memory_info().rss / MB
                    self.peaks[name] = max(self.peaks[name], rss)
            if self.done.wait(0.02):
                return


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
    print("\nA cold start of the default set-up, by how the bundle writes its secret (ms from the start):\n")
    print(
        "| secret written as | first token ms | served by | learned after ms | RSS at rest MB | RSS peak MB |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for shape in ("literal", "assembled"):
        fake = FakeSpotify().start()
        try:
            first_ms, first_by, learned_ms, rest, peak = learned_from_memory(fake, shape)
        finally:
            fake.stop()
        row = f"{first_ms:,.0f} | {first_by} | {learned_ms:,.0f} | {rest:,.0f} | {peak:,.0f}"
        print(f"| {shape} | {row} |")
    restarts()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
