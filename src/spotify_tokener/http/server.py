"""Runs an :class:`App` on Granian's embedded server inside our own event loop: one process, one loop
for the server, the service and Playwright, which keeps the idle footprint small."""

from __future__ import annotations

import asyncio
import logging
import socket

from granian.constants import HTTPModes, Interfaces
from granian.http import HTTP1Settings
from granian.log import LogLevels
from granian.server.embed import Server

from spotify_tokener import __version__
from spotify_tokener.http.app import App
from spotify_tokener.logs import GRANIAN_LOGGING
from spotify_tokener.settings import Settings

log = logging.getLogger(__name__)


class TokenerServer:
    def __init__(self, settings: Settings, app: App) -> None:
        self.settings = settings
        self.app = app
        self._stopping = asyncio.Event()
        self._granian = Server(
            self.app,
            address=settings.host,
            port=settings.port,
            interface=Interfaces.RSGI,
            # HTTP/1 only: in auto mode Granian waits for a first byte to pick the protocol, and the
            # header timeout starts after it, so a connection that never sends one is held forever.
            http=HTTPModes.http1,
            websockets=False,
            # The embedded server defaults to 128, and caps concurrent connections at the same number:
            # the 129th keep-alive client would wait for another to hang up.
            backlog=settings.backlog,
            backpressure=settings.backlog,
            http1_settings=HTTP1Settings(header_read_timeout=round(settings.header_timeout * 1000)),
            log_level=LogLevels.error,
            log_dictconfig=GRANIAN_LOGGING,
        )

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def stop(self) -> None:
        """Ask :meth:`run` to finish; safe to call from a signal handler, and more than once."""
        self._stopping.set()

    async def run(self) -> None:
        """Serve until :meth:`stop`; on the way out, waiting clients get a 503 at once. A taken port is
        refused first: Granian binds with ``SO_REUSEPORT``, so a second instance would share it silently."""
        host, port = self.settings.host, self.settings.port
        refuse_a_taken_port(host, port)
        async with self.app.lifespan():
            serving = asyncio.create_task(self._granian.serve())
            await asyncio.sleep(0)  # Granian binds its socket in the task's first step
            if serving.done():
                _raise_bind_error(serving)
            log.info("spotify-tokener %s listening on http://%s:%d", __version__, host, port)
            if warning := exposure_warning(self.settings):
                log.warning("%s", warning)
            stopping = asyncio.create_task(self._stopping.wait())
            await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            log.info("stopping")
            await self.app.service.stop()
            self._granian.stop()  # type: ignore[no-untyped-call]  # granian leaves it unannotated
            await serving
        log.info("stopped")


def refuse_a_taken_port(host: str, port: int) -> None:
    """Bind once without ``SO_REUSEPORT``: that fails if anything listens there, sharing or not."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # A predecessor's connections still in TIME_WAIT do not make the port taken.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))


def exposure_warning(settings: Settings) -> str | None:
    """The one line an operator needs when anyone who can reach the port can take tokens."""
    if not settings.beyond_loopback or settings.api_keys:
        return None
    return (
        f"listening on {settings.host}, beyond this machine, without TOKENER_API_KEY: anyone who can "
        "reach the port gets tokens (and, with a cookie, account tokens); set a key or HOST=127.0.0.1"
    )


def _raise_bind_error(serving: asyncio.Task[None]) -> None:
    """Granian reports a failed bind as a RuntimeError with a Rust backtrace; keep one line."""
    error = serving.exception()
    if isinstance(error, RuntimeError):
        raise OSError(str(error).splitlines()[0]) from None
    serving.result()
