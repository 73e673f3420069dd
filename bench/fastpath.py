"""In-process cost of the hot path: ``App.__rsgi__`` answering a bare ``GET /api/token`` from the cache.

No server and no sockets: a stub scope and protocol, and the coroutine driven by hand (the fast path
never awaits), so what is timed is our own code and nothing else. Compare two source trees in one
sitting by pointing ``PYTHONPATH`` at the other one's ``src``:

    .venv/bin/python bench/fastpath.py
    PYTHONPATH=/path/to/other/src .venv/bin/python bench/fastpath.py
"""

from __future__ import annotations

import argparse
import asyncio
import time
import timeit
from typing import Any

import uvloop

from spotify_tokener.domain.token import Token
from spotify_tokener.http.app import App
from spotify_tokener.http.server import TokenerServer
from spotify_tokener.settings import Settings
from spotify_tokener.wiring import create_app

HOUR_MS = 3_600_000


class CachedSource:
    """Hands out one long-lived anonymous token, so the cache stays fresh for the whole run."""

    async def attempt(self, sp_dc: str | None = None) -> Token:
        return Token("BQ-bench", time.time_ns() // 1_000_000 + HOUR_MS, "client", True)


class Scope:
    path = "/api/token"
    method = "GET"
    query_string = ""
    headers: dict[str, str] = {}  # noqa: RUF012 - read only


class Protocol:
    def response_bytes(self, status: int, headers: list[tuple[str, str]], body: bytes, /) -> None:
        pass


def warm_app() -> App:
    app = create_app(Settings(), CachedSource())
    asyncio.run(app.service.get_token())  # a fresh anonymous token in the cache
    return app


def per_call_ns(app: App, number: int) -> float:
    scope, protocol = Scope(), Protocol()

    def once() -> None:
        coroutine: Any = app.__rsgi__(scope, protocol)  # type: ignore[arg-type]
        try:
            coroutine.send(None)
        except StopIteration:
            return
        raise AssertionError("the fast path awaited: the cache was not fresh")

    return timeit.timeit(once, number=number) / number * 1e9


async def serve(port: int) -> None:
    """The real app on the real server set-up, its cache warm and no browser: for bench/instructions.sh."""
    settings = Settings.build(host="127.0.0.1", port=port, log_level="WARNING")
    await TokenerServer(settings, create_app(settings, CachedSource())).run()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--number", type=int, default=200_000, help="calls per round")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--serve", type=int, metavar="PORT", help="serve the app on PORT instead")
    args = parser.parse_args()
    if args.serve:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(serve(args.serve))
        return
    app = warm_app()
    rounds = sorted(per_call_ns(app, args.number) for _ in range(args.rounds))
    print(f"fast path: min {rounds[0]:.0f} ns, median {rounds[len(rounds) // 2]:.0f} ns per call")


if __name__ == "__main__":
    main()
