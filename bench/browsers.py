"""`make bench-browsers`: Chromium's headless shell against the full Chromium, side by side in one run.

Starts the fake Spotify and one service (the browser source alone) per browser. For each: the first
token after a cold start, the tree's memory at rest after it, then forced refreshes alternating
between the services while a sampler records each tree's peak memory. CPU per refresh counts the
whole tree, the renderers that lived for one fetch included (their time is added to the process
that reaped them). Last, what one more open context costs: each browser launched by Playwright alone,
contexts opened one by one on the fake page and held, the tree's PSS read after each.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import psutil
from playwright.async_api import async_playwright
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import free_port  # noqa: E402
from tests.fake_spotify import FakeSpotify  # noqa: E402
from tests.fake_spotify.assets import SITE  # noqa: E402

from bench.measure import service_env, tree_pss_mb, tree_rss_mb, tree_sum, wait_for  # noqa: E402
from bench.run import machine  # noqa: E402
from bench.sources import PeakSampler  # noqa: E402
from spotify_tokener.domain.proxy import parse_connect_to  # noqa: E402
from spotify_tokener.sources.browser.chromium import (  # noqa: E402
    chromium_args,
    full_chromium,
    headless_shell,
)
from spotify_tokener.sources.browser.filters import is_token_request  # noqa: E402

ROUNDS = 30
CONTEXTS = 5
START_S, ANSWER_S, STOP_S = 30, 60, 15  # generous: a cold launch on a busy machine
SETTLE_S = 2.0  # after the first token: its context is closed
REAPED_S = 0.2  # after a refresh: its context is closed and its renderers reaped
PAGE_DONE_S = 0.5  # after a page's token call: its work is over
COLUMNS = (
    "first token ms",
    "forced refresh median ms",
    "CPU per refresh ms",
    "idle tree MB",
    "peak tree MB",
    "PSS per open context MB",
)


def browsers() -> dict[str, str]:
    """A headless shell and a full Chromium, each found as the service finds them."""
    with sync_playwright() as playwright:
        own = Path(playwright.chromium.executable_path)
    shell, full = headless_shell(own), full_chromium(own)
    if shell is None or full is None:
        raise SystemExit("needs a headless shell and a full Chromium: make setup, then make test-deps")
    return {"headless shell": str(shell), "full Chromium": str(full)}


def tree_cpu_s(pid: int) -> float:
    """The tree's CPU time, with that of descendants already exited and reaped within it."""

    def spent(process: psutil.Process) -> float:
        times = process.cpu_times()
        return times.user + times.system + times.children_user + times.children_system

    return tree_sum(pid, spent)


@contextmanager
def service(fake: FakeSpotify, executable: str) -> Iterator[tuple[str, int, float]]:
    """A running service, its pid, and how long its first token took from the process start (ms)."""
    port = free_port()
    env = service_env(
        fake,
        port,
        TOKENER_LOG_LEVEL="WARNING",
        TOKENER_FORCE_MIN_INTERVAL="0",
        TOKENER_BROWSER_PATH=executable,
    )
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "spotify_tokener"], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(url + "/health", timeout_s=START_S)
        httpx.get(url + "/api/token", timeout=ANSWER_S).raise_for_status()
        yield url, process.pid, (time.perf_counter() - started) * 1000
    finally:
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=STOP_S)


async def pss_per_context_mb(fake: FakeSpotify, executable: str) -> float:
    """The tree's PSS with ``CONTEXTS`` contexts open, less that with one, per added context."""
    args = chromium_args("--ignore-certificate-errors", parse_connect_to(fake.connect_to))
    figures = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=args)
        for _ in range(CONTEXTS):
            page = await (await browser.new_context()).new_page()
            async with page.expect_response(lambda response: is_token_request(response.url)) as caught:
                await page.goto(SITE, wait_until="commit")
            await (await caught.value).finished()
            await asyncio.sleep(PAGE_DONE_S)
            figures.append(sum(tree_pss_mb(child.pid) for child in psutil.Process().children()))
        await browser.close()
    return (figures[-1] - figures[0]) / (CONTEXTS - 1)


def refresh_figures(fake: FakeSpotify, chosen: dict[str, str]) -> dict[str, list[float]]:
    """Per browser: first token ms, forced refresh median ms, CPU ms per refresh, idle and peak MB."""
    timings: dict[str, list[float]] = {name: [] for name in chosen}
    cpu: dict[str, float] = dict.fromkeys(chosen, 0.0)
    with ExitStack() as stack:
        running = {name: stack.enter_context(service(fake, path)) for name, path in chosen.items()}
        time.sleep(SETTLE_S)
        idle = {name: tree_rss_mb(pid) for name, (_, pid, _) in running.items()}
        sampler = PeakSampler({name: pid for name, (_, pid, _) in running.items()})
        sampler.start()
        for _ in range(ROUNDS):
            for name, (url, pid, _) in running.items():
                before, started = tree_cpu_s(pid), time.perf_counter()
                httpx.get(url + "/api/token?force=1", timeout=ANSWER_S).raise_for_status()
                timings[name].append((time.perf_counter() - started) * 1000)
                time.sleep(REAPED_S)
                cpu[name] += tree_cpu_s(pid) - before
        sampler.done.set()
        sampler.join()
    return {
        name: [
            first_ms,
            statistics.median(timings[name]),
            cpu[name] / ROUNDS * 1000,
            idle[name],
            sampler.peaks[name],
        ]
        for name, (_, _, first_ms) in running.items()
    }


def main() -> int:
    chosen = browsers()
    fake = FakeSpotify().start()
    try:
        figures = refresh_figures(fake, chosen)
        for name, executable in chosen.items():
            figures[name].append(asyncio.run(pss_per_context_mb(fake, executable)))
    finally:
        fake.stop()
    print(f"\nmachine: {machine()}\n{ROUNDS} forced refreshes per browser, alternating\n")
    print(f"| browser | {' | '.join(COLUMNS)} |")
    print(f"| --- | {' | '.join('---' for _ in COLUMNS)} |")
    for name, row in figures.items():
        print(f"| {name} | {' | '.join(f'{figure:,.0f}' for figure in row)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
