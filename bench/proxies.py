"""`make bench-proxies`: what leaving through a proxy costs a forced refresh, per kind of proxy.

Starts the fake Spotify, real proxies in front of it (tinyproxy, microsocks, tinyproxy behind a TLS
front: the ones the tests use) and one service (``python -m spotify_tokener``) per way out: direct,
http, https, socks5. The forced refreshes alternate between the services, round after round, so
every way out sees the same machine noise; the table gives each one's median and its ratio to direct,
and the service process's own memory (the relays live in it; Chromium's is the same for every way).
"""

from __future__ import annotations

import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
from tests.conftest import free_port  # noqa: E402
from tests.fake_spotify import FakeSpotify  # noqa: E402
from tests.proxies import Microsocks, Tinyproxy, TlsFront, started  # noqa: E402

from bench.measure import MB, percentile, service_env, wait_for  # noqa: E402
from bench.run import machine  # noqa: E402

ROUNDS = 15
WAYS = ("direct", "http", "https", "socks5")


@contextmanager
def service(fake: FakeSpotify, proxy_url: str) -> Iterator[tuple[str, int]]:
    port = free_port()
    env = service_env(fake, port, TOKENER_LOG_LEVEL="WARNING", TOKENER_FORCE_MIN_INTERVAL="0")
    env["TOKENER_PROXY"] = proxy_url
    env["TOKENER_CA_FILE"] = str(fake.ca_file)  # the https proxy's certificate, for the relay's TLS
    process = subprocess.Popen([sys.executable, "-m", "spotify_tokener"], env=env)
    try:
        yield f"http://127.0.0.1:{port}", process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)


def timed_force(url: str) -> float:
    started = time.perf_counter()
    httpx.get(url + "/api/token?force=1", timeout=60).raise_for_status()
    return (time.perf_counter() - started) * 1000


def proxies(fake: FakeSpotify, stack: ExitStack, directory: Path) -> dict[str, str]:
    """The proxy URL of each way out ("" for direct)."""
    plain = stack.enter_context(started(Tinyproxy(free_port(), "127.0.0.2", directory)))
    socks = stack.enter_context(started(Microsocks(free_port(), "127.0.0.3", directory)))
    front = TlsFront(free_port(), plain, fake.authority.issue_cert("127.0.0.1"))
    stack.enter_context(started(front))
    return {"direct": "", "http": plain.url(), "https": front.url(), "socks5": socks.url()}


def main() -> int:
    fake = FakeSpotify().start()
    timings: dict[str, list[float]] = {way: [] for way in WAYS}
    memory: dict[str, float] = {}
    try:
        with ExitStack() as stack, tempfile.TemporaryDirectory() as scratch:
            urls = proxies(fake, stack, Path(scratch))
            services = {way: stack.enter_context(service(fake, urls[way])) for way in WAYS}
            for url, _ in services.values():
                wait_for(url + "/health", timeout_s=30)
                httpx.get(url + "/api/token", timeout=60).raise_for_status()
            for _ in range(ROUNDS):
                for way, (url, _) in services.items():
                    timings[way].append(timed_force(url))
            memory = {way: psutil.Process(pid).memory_info().rss / MB for way, (_, pid) in services.items()}
    finally:
        fake.stop()
    direct = statistics.median(timings["direct"])
    print(f"\nmachine: {machine()}\n{ROUNDS} forced refreshes per way out, alternating\n")
    print("| way out | median ms | p90 ms | median / direct | service process RSS MB |")
    print("| --- | --- | --- | --- | --- |")
    for way in WAYS:
        median = statistics.median(timings[way])
        p90 = percentile(timings[way], 0.9)
        print(f"| {way} | {median:,.0f} | {p90:,.0f} | {median / direct:.2f} | {memory[way]:,.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
