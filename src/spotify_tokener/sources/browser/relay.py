"""A local SOCKS5 relay in front of each proxy: the only way Chromium leaves through one.

Chromium cannot give a SOCKS5 proxy a password, and through any proxy it names the host it wants,
so ``TOKENER_CONNECT_TO`` could not reach past one. So a context leaves through a relay on 127.0.0.1
that speaks password-less SOCKS5 to Chromium and connects through the real proxy, with its
credentials, to the host asked after the connect-to override; to Spotify's hosts and ports only, so
that no other local process can borrow the proxy. TLS stays end to end between Chromium and Spotify.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import logging
import re
import ssl
import struct
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from python_socks import ProxyError, ProxyType
from python_socks.async_.asyncio.v2 import Proxy as Upstream

from spotify_tokener.domain.proxy import (
    DEFAULT_PORTS,
    HOSTNAME,
    ConnectTo,
    Endpoint,
    Proxy,
    credentials_refused,
    tunnel_refused,
)

log = logging.getLogger(__name__)

SOCKS_VERSION = 5
NO_AUTH, NO_METHOD = 0x00, 0xFF
CONNECT = 0x01
IPV4, DOMAIN, IPV6 = 0x01, 0x03, 0x04
SUCCEEDED, FAILED, NOT_ALLOWED, UNSUPPORTED_COMMAND = 0x00, 0x01, 0x02, 0x07
CHUNK = 64 * 1024
HTTPS_PORT = 443
MAX_TUNNELS = 32  # Chromium's own limit of sockets per proxy server: more is not Chromium
TUNNEL_IDLE_S = 30.0  # a tunnel silent both ways this long is cut (contexts live for seconds)
REPLY_HEAD_CAP = 16 * 1024  # a CONNECT reply's status line and headers; a longer one is no proxy's
STATUS_LINE = re.compile(rb"HTTP/1\.\S* (\d{3})[ \r]")
NOT_HTTP = "did not answer its CONNECT like an HTTP proxy"


Ends = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class HandshakeError(Exception):
    """The client did not speak the SOCKS5 we answer (a CONNECT without authentication)."""


class TunnelRefused(Exception):
    """An HTTP proxy did not open the tunnel; the message says why in our words, never its body."""


class Relay:
    """One proxy's relay: a listener on an ephemeral loopback port."""

    def __init__(
        self,
        proxy: Proxy,
        connect_to: ConnectTo,
        allowed: Callable[[Endpoint], bool],
        tls: ssl.SSLContext,
        connect_timeout_s: float,
        *,
        max_tunnels: int = MAX_TUNNELS,
        idle_s: float = TUNNEL_IDLE_S,
    ) -> None:
        """``connect_timeout_s`` bounds reaching the destination, so that a proxy dropping connections
        silently leaves the attempt time for the next one. Any local process can connect to the
        relay: ``max_tunnels`` and ``idle_s`` bound what it can hold of the proxy."""
        self.proxy = proxy
        self._tls = tls if proxy.scheme == "https" else None
        self._connect_to = connect_to
        self._allowed = allowed
        self._connect_timeout_s = connect_timeout_s
        self._max_tunnels = max_tunnels
        self._idle_s = idle_s
        self._server: asyncio.Server | None = None
        self._starting = asyncio.Lock()
        self._handlers: set[asyncio.Task[None]] = set()
        self._failure: tuple[str, float] | None = None  # why the proxy last failed, and when (monotonic)
        self._logged: str | None = None

    async def address(self) -> str:
        """The proxy server to give Chromium; the relay starts listening on the first call."""
        async with self._starting:
            if self._server is None:
                self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
            return f"socks5://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    def failure_since(self, started: float) -> str | None:
        """Why the proxy failed a connection since ``started`` (monotonic seconds), if it did."""
        failure = self._failure
        return failure[0] if failure is not None and failure[1] >= started else None

    def shut(self) -> None:
        """Stop listening and end every connection now; the next :meth:`address` listens anew."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for handler in self._handlers:
            handler.cancel()

    async def close(self) -> None:
        self.shut()
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=self._connect_timeout_s)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        if handler is None or len(self._handlers) >= self._max_tunnels:
            writer.close()
            return
        self._handlers.add(handler)
        try:
            await self._relay(reader, writer)
        except (HandshakeError, ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        finally:
            writer.close()
            self._handlers.discard(handler)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async with asyncio.timeout(self._connect_timeout_s):
            wanted = await read_connect_request(reader, writer)
        if not self._allowed(wanted):
            await reply(writer, NOT_ALLOWED)
            return
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                far = await self._open(self._connect_to.get(wanted, wanted))
        except (ProxyError, TunnelRefused, OSError) as error:  # its timeouts are OSErrors too
            self._note_failure(error)
            await reply(writer, FAILED)
            return
        self._logged = None
        try:
            await reply(writer, SUCCEEDED)
            await _pipe_both_ways((reader, writer), far, self._connect_timeout_s, self._idle_s)
        finally:
            far[1].close()

    async def _open(self, target: Endpoint) -> Ends:
        if self.proxy.scheme != "socks5":
            return await http_tunnel(self.proxy, target, self._tls)
        proxy = self.proxy
        # rdns: the proxy resolves Spotify's names, as a browser behind it would have it do
        socks = Upstream(ProxyType.SOCKS5, proxy.host, proxy.port, proxy.username, proxy.password, rdns=True)
        stream = await socks.connect(target.host, target.port)
        return stream.reader, stream.writer

    def _note_failure(self, error: Exception) -> None:
        """Why the proxy let us down, in our words: a library's message could quote what it was sent."""
        if isinstance(error, TimeoutError):
            why = "did not answer in time"
        elif isinstance(error, TunnelRefused):
            why = str(error)
        elif isinstance(error, ProxyError) and "authentication failure" in str(error):  # python-socks' words
            why = credentials_refused("SOCKS5")
        elif isinstance(error, ProxyError):
            why = "refused the connection (its credentials, its rules, or the host unreachable from it)"
        elif isinstance(error, ssl.SSLError):
            why = "failed its TLS handshake"
        else:
            why = "could not be reached"
        if why != self._logged:  # once per reason, until a connection gets through again
            log.warning("proxy %s %s", self.proxy.label, why)
            self._logged = why
        self._failure = (why, time.monotonic())


async def http_tunnel(proxy: Proxy, target: Endpoint, tls: ssl.SSLContext | None) -> Ends:
    """A CONNECT tunnel through an HTTP(S) proxy. Its reply is read up to the blank line however
    many pieces it comes in (python-socks parses one read, so a reply in two broke TLS and benched a
    good proxy), and what follows the blank line stays in the reader: the tunnel's first bytes."""
    reader, writer = await asyncio.open_connection(proxy.host, proxy.port, ssl=tls, limit=REPLY_HEAD_CAP)
    try:
        writer.write(_connect_request(proxy, target))
        try:
            status = STATUS_LINE.match(await reader.readuntil(b"\r\n\r\n"))
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            status = None
        if status is None:
            raise TunnelRefused(NOT_HTTP)
        if not 200 <= int(status[1]) < 300:
            raise TunnelRefused(tunnel_refused(int(status[1])))
    except BaseException:
        writer.close()
        raise
    return reader, writer


def _connect_request(proxy: Proxy, target: Endpoint) -> bytes:
    authority = f"[{target.host}]:{target.port}" if ":" in target.host else str(target)
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
    if proxy.username:
        basic = base64.b64encode(f"{proxy.username}:{proxy.password}".encode("latin-1")).decode()
        lines.append(f"Proxy-Authorization: Basic {basic}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


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
        host = _hostname(await reader.readexactly(length))
    elif address_type in (IPV4, IPV6):
        packed = await reader.readexactly(4 if address_type == IPV4 else 16)
        host = str(ipaddress.ip_address(packed))
    else:
        raise HandshakeError("unknown address type")
    (port,) = struct.unpack("!H", await reader.readexactly(2))
    return Endpoint(host, port)


def _hostname(raw: bytes) -> str:
    """A DNS name as Chromium sends one (ASCII letters, digits, hyphens, dots), lower-cased; anything
    else (spaces, CR, LF, NUL...) could smuggle a second request to the proxy behind us."""
    try:
        host = raw.decode("ascii").lower().rstrip(".")
    except UnicodeDecodeError:
        raise HandshakeError("a host name that is not ASCII") from None
    if not HOSTNAME.fullmatch(host):
        raise HandshakeError("not a host name")
    return host


async def reply(writer: asyncio.StreamWriter, code: int) -> None:
    """A SOCKS5 reply; the bound address is not meaningful here, so it is all zeros."""
    writer.write(bytes([SOCKS_VERSION, code, 0, IPV4, 0, 0, 0, 0, 0, 0]))
    await writer.drain()


async def _pipe_both_ways(client: Ends, far: Ends, grace_s: float, idle_s: float) -> None:
    """Copy bytes both ways. An end of stream one way is passed on; the other way then has
    ``grace_s`` to end too, and whatever is left is cut (the caller closes both ends); so is a
    tunnel where nothing moved either way for ``idle_s`` (TimeoutError)."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(idle_s) as idle:

        def moved() -> None:
            idle.reschedule(loop.time() + idle_s)

        copies = {
            asyncio.ensure_future(_copy(client[0], far[1], moved)),
            asyncio.ensure_future(_copy(far[0], client[1], moved)),
        }
        try:
            _, left = await asyncio.wait(copies, return_when=asyncio.FIRST_COMPLETED)
            if left:
                await asyncio.wait(left, timeout=grace_s)
        finally:
            for copy in copies:
                copy.cancel()
            await asyncio.gather(*copies, return_exceptions=True)


async def _copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter, moved: Callable[[], None]) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await source.read(CHUNK):
            moved()
            sink.write(data)
            await sink.drain()
        if sink.can_write_eof():
            sink.write_eof()


def spotify_destinations(page_url: str, connect_to: ConnectTo) -> Callable[[Endpoint], bool]:
    """Where the relay opens connections: Spotify's domains and the configured page's host, on
    HTTPS's port and the page's, and the host:port pairs the connect-to overrides name. Nothing
    else: a relay any local process can reach must not lend the operator's proxy to anything else."""
    page = urlsplit(page_url)
    suffixes = ("spotify.com", "spotifycdn.com", "scdn.co", (page.hostname or "").lower())
    ports = {HTTPS_PORT, page.port or DEFAULT_PORTS.get(page.scheme, HTTPS_PORT)}
    overridden = set(connect_to)  # the operator's own host:port pairs, whatever their domain

    def allowed(wanted: Endpoint) -> bool:
        host = wanted.host.lower().rstrip(".")
        in_domain = any(host == suffix or host.endswith("." + suffix) for suffix in suffixes if suffix)
        return (in_domain and wanted.port in ports) or Endpoint(host, wanted.port) in overridden

    return allowed
