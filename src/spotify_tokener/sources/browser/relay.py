"""A local SOCKS5 relay in front of each proxy: the only way Chromium leaves through one.

Chromium cannot give a SOCKS5 proxy a password, and through any proxy it names the host it wants,
so ``TOKENER_CONNECT_TO`` could not reach past one. So Chromium never sees the operator's proxies:
a context leaves through a relay on 127.0.0.1 that speaks password-less SOCKS5 to Chromium and opens
each connection through the real proxy (http, https or socks5, with its credentials; python-socks),
to the host asked after the connect-to override. It opens connections to Spotify's hosts only, so
another process on this machine cannot borrow the proxy for anything else. TLS stays end to end
between Chromium and Spotify: what Spotify sees is still Chromium.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import ssl
import struct
from collections.abc import Callable

from python_socks import ProxyConnectionError, ProxyError, ProxyTimeoutError, ProxyType
from python_socks.async_.asyncio.v2 import Proxy as Upstream

from spotify_tokener.domain.egress import ConnectTo, Endpoint, Proxy

log = logging.getLogger(__name__)

SOCKS_VERSION = 5
NO_AUTH, NO_METHOD = 0x00, 0xFF
CONNECT = 0x01
IPV4, DOMAIN, IPV6 = 0x01, 0x03, 0x04
SUCCEEDED, FAILED, NOT_ALLOWED, UNSUPPORTED_COMMAND = 0x00, 0x01, 0x02, 0x07
CHUNK = 64 * 1024
UPSTREAM_TYPES = {"http": ProxyType.HTTP, "https": ProxyType.HTTP, "socks5": ProxyType.SOCKS5}


class HandshakeError(Exception):
    """The client did not speak the SOCKS5 we answer (a CONNECT without authentication)."""


class Relay:
    """One proxy's relay: a listener on an ephemeral loopback port."""

    def __init__(
        self,
        proxy: Proxy,
        connect_to: ConnectTo,
        allowed: Callable[[str], bool],
        tls: ssl.SSLContext,
        timeout_s: float,
    ) -> None:
        """``tls`` verifies an https proxy's certificate; the connections through it carry their own."""
        self.proxy = proxy
        self._upstream = Upstream(
            UPSTREAM_TYPES[proxy.scheme],
            proxy.host,
            proxy.port,
            proxy.username or None,
            proxy.password or None,
            rdns=True,  # the proxy resolves Spotify's names, as a browser behind it would have it do
            proxy_ssl=tls if proxy.scheme == "https" else None,
        )
        self._connect_to = connect_to
        self._allowed = allowed
        self._timeout_s = timeout_s
        self._server: asyncio.Server | None = None
        self._starting = asyncio.Lock()
        self._connections: set[asyncio.Task[None]] = set()
        self.last_failure: str | None = None

    async def address(self) -> str:
        """The proxy server to give Chromium; the relay starts listening on the first call."""
        async with self._starting:
            if self._server is None:
                self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"socks5://127.0.0.1:{port}"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.wait(self._connections)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._relay(reader, writer)
        except (HandshakeError, ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        finally:
            self._connections.discard(task)
            writer.close()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async with asyncio.timeout(self._timeout_s):
            wanted = await read_connect_request(reader, writer)
        if not self._allowed(wanted.host):
            await reply(writer, NOT_ALLOWED)
            return
        target = self._connect_to.get(Endpoint(wanted.host.lower(), wanted.port), wanted)
        try:
            stream = await self._upstream.connect(target.host, target.port, timeout=self._timeout_s)
        except (ProxyConnectionError, ProxyTimeoutError, ProxyError, ssl.SSLError, OSError) as error:
            self._note_failure(error)
            await reply(writer, FAILED)
            return
        self.last_failure = None
        await reply(writer, SUCCEEDED)
        await _pipe_both_ways(reader, writer, stream.reader, stream.writer)

    def _note_failure(self, error: Exception) -> None:
        """Why the proxy let us down, in our words: a library's message could quote what it was sent."""
        if isinstance(error, ProxyTimeoutError | TimeoutError):
            why = "did not answer in time"
        elif isinstance(error, ProxyError):
            why = "refused the connection (its credentials, its rules, or the host unreachable from it)"
        elif isinstance(error, ssl.SSLError):
            why = "failed its TLS handshake"
        else:
            why = "could not be reached"
        if why != self.last_failure:
            log.warning("proxy %s %s", self.proxy.label, why)
        self.last_failure = why


async def read_connect_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Endpoint:
    """Greet a SOCKS5 client without authentication and read where it wants to go (RFC 1928)."""
    version, count = await reader.readexactly(2)
    methods = await reader.readexactly(count)
    if version != SOCKS_VERSION or NO_AUTH not in methods:
        writer.write(bytes([SOCKS_VERSION, NO_METHOD]))
        raise HandshakeError("no acceptable method")
    writer.write(bytes([SOCKS_VERSION, NO_AUTH]))
    version, command, _, address_type = await reader.readexactly(4)
    if version != SOCKS_VERSION or command != CONNECT:
        await reply(writer, UNSUPPORTED_COMMAND)
        raise HandshakeError("not a CONNECT")
    if address_type == DOMAIN:
        (length,) = await reader.readexactly(1)
        host = (await reader.readexactly(length)).decode("idna")
    elif address_type in (IPV4, IPV6):
        packed = await reader.readexactly(4 if address_type == IPV4 else 16)
        host = str(ipaddress.ip_address(packed))
    else:
        raise HandshakeError("unknown address type")
    (port,) = struct.unpack("!H", await reader.readexactly(2))
    return Endpoint(host, port)


async def reply(writer: asyncio.StreamWriter, code: int) -> None:
    """A SOCKS5 reply; the bound address is not meaningful here, so it is all zeros."""
    writer.write(bytes([SOCKS_VERSION, code, 0, IPV4, 0, 0, 0, 0, 0, 0]))
    await writer.drain()


async def _pipe_both_ways(
    client_reader: asyncio.StreamReader,
    client_writer: asyncio.StreamWriter,
    upstream_reader: asyncio.StreamReader,
    upstream_writer: asyncio.StreamWriter,
) -> None:
    """Copy bytes both ways until either side closes, then close both."""
    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(_copy(client_reader, upstream_writer))
            group.create_task(_copy(upstream_reader, client_writer))
    finally:
        upstream_writer.close()


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    writer.close()


def spotify_host(extra: str) -> Callable[[str], bool]:
    """Whether a host is one the web player needs: Spotify's domains, and the configured page's host."""
    suffixes = ("spotify.com", "spotifycdn.com", "scdn.co", extra.lower())

    def allowed(host: str) -> bool:
        host = host.lower().rstrip(".")
        return any(host == suffix or host.endswith("." + suffix) for suffix in suffixes if suffix)

    return allowed
