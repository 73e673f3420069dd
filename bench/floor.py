"""The floor: a bare Granian RSGI handler that answers every request with the same bytes.

It runs on exactly the server set-up the service uses (Granian's embedded server on a uvloop event
loop, same backlog), so the ratio of the two isolates what the service's own code costs.
``--reads`` makes it also read what any correct token server must before answering (path, method,
query string, the Cookie header), which shows what Granian's request scope costs by itself.

    python bench/floor.py --port 8200 --body body.json [--reads]
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

import uvloop
from granian.constants import Interfaces
from granian.log import LogLevels
from granian.server.embed import Server

HEADERS = [("content-type", "application/json"), ("cache-control", "no-store")]


def make_app(body: bytes, *, reads: bool = False) -> Any:
    async def app(scope: Any, protocol: Any) -> None:
        protocol.response_bytes(200, HEADERS, body)

    async def reading_app(scope: Any, protocol: Any) -> None:
        if scope.path and scope.method and not scope.query_string and "cookie" not in scope.headers:
            protocol.response_bytes(200, HEADERS, body)

    return reading_app if reads else app


async def serve(port: int, body: bytes, backlog: int, reads: bool) -> None:
    server = Server(
        make_app(body, reads=reads),
        address="127.0.0.1",
        port=port,
        interface=Interfaces.RSGI,
        backlog=backlog,
        backpressure=backlog,
        log_level=LogLevels.error,
    )
    await server.serve()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--body", type=Path, required=True)
    parser.add_argument("--backlog", type=int, default=1024)
    parser.add_argument("--reads", action="store_true", help="read the request as the service must")
    args = parser.parse_args()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(args.port, args.body.read_bytes(), args.backlog, args.reads))


if __name__ == "__main__":
    main()
