"""`make bench-replicas`: what sharing through Redis saves when several replicas serve one bot fleet.

Starts the fake Spotify, a redis-server and N replicas (``python -m spotify_tokener``, real Chromium)
twice: each on its own, then sharing one Redis. Both times a cold burst spread over every replica,
then a forced refresh on every replica at once, counting the token requests Spotify received and the
browsers launched. Finally, with Redis, Redis is killed and every replica forced again: no request
may fail. Prints one table; BENCHMARKS.md quotes it.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import free_port  # noqa: E402
from tests.fake_spotify import FakeSpotify  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402

from bench.measure import percentile, service_env, tree_rss_mb, wait_for  # noqa: E402
from bench.run import machine  # noqa: E402

REPLICAS = 3
BURST = 150


@contextmanager
def replicas(fake: FakeSpotify, redis_url: str | None) -> Iterator[list[tuple[str, int]]]:
    """(base URL, pid) of each replica, all started at once."""
    processes = []
    try:
        for _ in range(REPLICAS):
            port = free_port()
            env = service_env(
                fake,
                port,
                TOKENER_LOG_LEVEL="ERROR",
                TOKENER_FORCE_MIN_INTERVAL="0",
                TOKENER_REDIS_URL=redis_url or "",
            )
            process = subprocess.Popen([sys.executable, "-m", "spotify_tokener"], env=env)
            processes.append((f"http://127.0.0.1:{port}", process))
        yield [(url, process.pid) for url, process in processes]
    finally:
        for _, process in processes:
            process.send_signal(signal.SIGTERM)
        for _, process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def spread(urls: list[str], count: int, path: str) -> tuple[list[float], int]:
    """``count`` concurrent requests over the replicas: latencies in ms, and how many failed."""
    limits = httpx.Limits(max_connections=count)
    async with httpx.AsyncClient(limits=limits, timeout=120) as client:

        async def one(url: str) -> tuple[float, bool]:
            started = time.perf_counter()
            response = await client.get(url + path)
            return (time.perf_counter() - started) * 1000, response.status_code == 200

        results = await asyncio.gather(*(one(urls[i % len(urls)]) for i in range(count)))
    return [ms for ms, _ in results], sum(not ok for _, ok in results)


def launches(urls: list[str]) -> int:
    return sum(httpx.get(url + "/health").json()["browser"]["launches"] for url in urls)


def run_mode(fake: FakeSpotify, redis_url: str | None) -> dict[str, float]:
    fake.reset()
    figures: dict[str, float] = {}
    with replicas(fake, redis_url) as group:
        urls = [url for url, _ in group]
        for url in urls:
            wait_for(url + "/health", timeout_s=30, interval_s=0.001)
        latencies, failed = asyncio.run(spread(urls, BURST, "/api/token"))
        figures["cold_burst_upstream"] = fake.token_requests
        figures["cold_burst_p50_ms"] = percentile(latencies, 0.5)
        figures["cold_burst_p99_ms"] = percentile(latencies, 0.99)
        figures["cold_burst_failed"] = failed
        before = fake.token_requests
        _, failed = asyncio.run(spread(urls, REPLICAS, "/api/token?force=1"))
        figures["forced_everywhere_upstream"] = fake.token_requests - before
        figures["browsers_launched"] = launches(urls)
        figures["busy_mb_all_replicas"] = sum(tree_rss_mb(pid) for _, pid in group)
    return figures


def redis_outage(fake: FakeSpotify, redis: RedisServer) -> dict[str, float]:
    fake.reset()
    with replicas(fake, redis.url) as group:
        urls = [url for url, _ in group]
        for url in urls:
            wait_for(url + "/health", timeout_s=30)
        asyncio.run(spread(urls, REPLICAS, "/api/token"))
        redis.stop()
        latencies, failed = asyncio.run(spread(urls, REPLICAS * 2, "/api/token?force=1"))
        redis.start()
        _, failed_after = asyncio.run(spread(urls, REPLICAS, "/api/token?force=1"))
    return {
        "redis_down_forced_failed": failed + failed_after,
        "redis_down_forced_p50_ms": percentile(latencies, 0.5),
    }


def main() -> int:
    fake = FakeSpotify().start()
    redis = RedisServer(free_port()).start()
    try:
        alone = run_mode(fake, None)
        together = run_mode(fake, redis.url)
        outage = redis_outage(fake, redis)
    finally:
        redis.stop()
        fake.stop()
    print(f"\nmachine: {machine()}; {REPLICAS} replicas, burst of {BURST}\n")
    print(f"| figure | {REPLICAS} alone | {REPLICAS} sharing Redis |\n| --- | ---: | ---: |")
    for name in alone:
        print(f"| {name} | {alone[name]:,.1f} | {together[name]:,.1f} |")
    for name, value in outage.items():
        print(f"| {name} | | {value:,.1f} |")
    shared_ok = together["cold_burst_upstream"] == 1 and together["forced_everywhere_upstream"] == 1
    return 0 if shared_ok and outage["redis_down_forced_failed"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
