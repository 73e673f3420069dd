"""The relay's SOCKS5 greeting, the destinations it refuses, and its account of a dead proxy;
relaying through real proxies is an integration test (test_proxies.py)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from spotify_tokener.domain.proxy import Endpoint, Proxy, parse_connect_to
from spotify_tokener.sources.browser.relay import (
    MAX_TUNNELS,
    TUNNEL_IDLE_S,
    HandshakeError,
    Relay,
    read_connect_request,
    spotify_destinations,
)
from tests.conftest import free_port


async def greeted(request: bytes) -> tuple[Endpoint | Exception, bytes]:
    """What the relay's greeting made of ``request``, and the bytes it answered."""
    seen: list[Endpoint | Exception] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            seen.append(await read_connect_request(reader, writer))
        except (HandshakeError, asyncio.IncompleteReadError) as error:
            seen.append(error)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    async with server:
        reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname()[:2])
        writer.write(request)
        writer.write_eof()
        answer = await reader.read()
        writer.close()
    return seen[0], answer


def connect(address_type: int, address: bytes, port: int = 443) -> bytes:
    return bytes([5, 1, 0]) + bytes([5, 1, 0, address_type]) + address + struct.pack("!H", port)


@pytest.mark.parametrize(
    ("address_type", "address", "host"),
    [
        (3, bytes([16]) + b"open.spotify.com", "open.spotify.com"),
        (1, bytes([127, 0, 0, 1]), "127.0.0.1"),
        (4, bytes(15) + bytes([1]), "::1"),
    ],
)
async def test_a_connect_without_authentication_names_its_destination(
    address_type: int, address: bytes, host: str
) -> None:
    wanted, answer = await greeted(connect(address_type, address))
    assert wanted == Endpoint(host, 443)
    assert answer == bytes([5, 0])


async def test_a_client_that_wants_to_authenticate_is_turned_away() -> None:
    wanted, answer = await greeted(bytes([5, 1, 2]))  # username/password only
    assert isinstance(wanted, HandshakeError)
    assert answer == bytes([5, 0xFF])


async def test_a_bind_request_is_not_supported() -> None:
    wanted, answer = await greeted(bytes([5, 1, 0, 5, 2, 0, 1, 127, 0, 0, 1, 0, 80]))
    assert isinstance(wanted, HandshakeError)
    assert answer[2:4] == bytes([5, 7])


@pytest.mark.parametrize(
    "name",
    [
        b"127.0.0.1:8080 HTTP/1.1\r\nX: a.spotify.com",  # a second request line for an HTTP proxy
        b"localhost\x00.spotify.com",  # cut at the NUL by a SOCKS proxy written in C
        b"open spotify.com",
        "ope\u00f1.spotify.com".encode(),
        b"-open.spotify.com",
    ],
)
async def test_a_name_that_is_not_a_plain_host_name_is_refused(name: bytes) -> None:
    wanted, _ = await greeted(connect(3, bytes([len(name)]) + name))
    assert isinstance(wanted, HandshakeError)


def test_only_spotifys_hosts_and_ports_and_the_configured_pages_are_relayed() -> None:
    overrides = parse_connect_to("x.spotify.com:4443:h:1,mirror.test:9443:h:2")
    allowed = spotify_destinations("https://mirror.example:8443/", overrides)
    spotifys = ("open.spotify.com", "OPEN.SPOTIFY.COM.", "open.spotifycdn.com", "i.scdn.co")
    for host in (*spotifys, "mirror.example"):
        assert allowed(Endpoint(host, 443)), host
    assert allowed(Endpoint("open.spotify.com", 8443))  # the page's port
    assert allowed(Endpoint("x.spotify.com", 4443))  # an override's host and port, and only those
    assert allowed(Endpoint("mirror.test", 9443))
    assert not allowed(Endpoint("open.spotify.com", 4443))
    assert not allowed(Endpoint("mirror.test", 443))
    for host in ("example.com", "notspotify.com", "spotify.com.evil.example", "127.0.0.1", "scdn.co.uk"):
        assert not allowed(Endpoint(host, 443)), host
    for port in (22, 80, 6379):
        assert not allowed(Endpoint("open.spotify.com", port)), port


async def relayed(relay: Relay, host: bytes, port: int) -> bytes:
    """The relay's reply to a CONNECT for ``host:port``; empty if it hung up instead."""
    address = (await relay.address()).removeprefix("socks5://")
    reader, writer = await asyncio.open_connection(*address.rsplit(":", 1))
    writer.write(connect(3, bytes([len(host)]) + host, port))
    answer = await reader.read()  # the relay hangs up after a refusal
    writer.close()
    return answer


ConnectProxy = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def relay_before(
    connect_proxy: ConnectProxy,
    connect_timeout_s: float,
    *,
    max_tunnels: int = MAX_TUNNELS,
    idle_s: float = TUNNEL_IDLE_S,
) -> AsyncIterator[Relay]:
    """A relay to Spotify's destinations through a local HTTP proxy that answers with ``connect_proxy``."""
    server = await asyncio.start_server(connect_proxy, "127.0.0.1", 0)
    proxy = Proxy("http", "127.0.0.1", server.sockets[0].getsockname()[1])
    allowed = spotify_destinations("https://open.spotify.com/", {})
    tls = ssl.create_default_context()
    relay = Relay(proxy, {}, allowed, tls, connect_timeout_s, max_tunnels=max_tunnels, idle_s=idle_s)
    try:
        yield relay
    finally:
        await relay.close()
        server.close()


async def test_the_relay_refuses_what_it_must_not_reach_and_names_a_dead_proxy() -> None:
    dead = Proxy("http", "127.0.0.1", free_port(), "user", "topsecret")  # nothing listens there
    allowed = spotify_destinations("https://open.spotify.com/", {})
    relay = Relay(dead, {}, allowed, ssl.create_default_context(), connect_timeout_s=5)
    started = time.monotonic()
    try:
        assert (await relayed(relay, b"example.com", 443))[:4] == bytes([5, 0, 5, 2])  # not allowed
        assert (await relayed(relay, b"open.spotify.com", 22))[:4] == bytes([5, 0, 5, 2])
        assert relay.failure_since(started) is None  # refusals are the relay's, not the proxy's
        assert (await relayed(relay, b"open.spotify.com", 443))[:4] == bytes([5, 0, 5, 1])  # failed
        assert relay.failure_since(started) == "could not be reached"
        assert relay.failure_since(time.monotonic() + 1) is None  # not a later attempt's failure
    finally:
        await relay.close()


async def test_a_connection_whose_far_end_never_closes_is_cut_after_the_grace() -> None:
    """The client ends its side; the far end (a CONNECT proxy that then goes quiet) never does."""
    quiet: list[asyncio.StreamWriter] = []

    async def connect_proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        quiet.append(writer)  # kept open, never answering, never closing

    try:
        async with relay_before(connect_proxy, 0.2) as relay:
            address = (await relay.address()).removeprefix("socks5://")
            reader, writer = await asyncio.open_connection(*address.rsplit(":", 1))
            writer.write(connect(3, bytes([16]) + b"open.spotify.com"))
            assert await reader.readexactly(12) == bytes([5, 0, 5, 0, 0, 1, 0, 0, 0, 0, 0, 0])
            writer.write_eof()
            async with asyncio.timeout(2):  # cut after the 0.2 s grace, not left open
                assert await reader.read() == b""
            writer.close()
    finally:
        for held in quiet:
            held.close()


async def tunnel_through(reply_pieces: list[bytes]) -> bytes:
    """What a SOCKS5 client of the relay reads (reply, then tunnel) when an HTTP proxy answers its
    CONNECT in ``reply_pieces``, each its own write, the loop let run between them."""

    async def connect_proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        for piece in reply_pieces:
            writer.write(piece)
            await writer.drain()
            for _ in range(20):  # loop turns, not time: the relay reads each piece on its own
                await asyncio.sleep(0)
        writer.close()

    async with relay_before(connect_proxy, 2) as relay:
        address = (await relay.address()).removeprefix("socks5://")
        reader, writer = await asyncio.open_connection(*address.rsplit(":", 1))
        writer.write(connect(3, bytes([16]) + b"open.spotify.com"))
        async with asyncio.timeout(5):
            answer = await reader.read()
        writer.close()
        return answer


SOCKS_OK = bytes([5, 0, 5, 0, 0, 1, 0, 0, 0, 0, 0, 0])


async def test_a_connect_reply_in_pieces_is_read_to_its_blank_line_and_nothing_more() -> None:
    pieces = [b"HTTP/1.1 200 Connection", b" established\r\nVia: 1.1 squid\r\n", b"\r", b"\n\x16\x03TLS"]
    assert await tunnel_through(pieces) == SOCKS_OK + b"\x16\x03TLS"


async def test_what_follows_the_blank_line_in_the_same_read_goes_into_the_tunnel() -> None:
    assert await tunnel_through([b"HTTP/1.0 200 OK\r\n\r\n\x16\x03early"]) == SOCKS_OK + b"\x16\x03early"


@pytest.mark.parametrize(
    ("reply", "why"),
    [
        (
            b"HTTP/1.1 403 Forbidden\r\n\r\n",
            "refused the connection (HTTP 403: its rules, or the host unreachable from it)",
        ),
        (
            b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n\r\n",
            "refused its credentials (HTTP 407: a wrong or missing user or password)",
        ),
        (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "did not answer its CONNECT like an HTTP proxy"),
        (
            b"HTTP/1.1 200 OK\r\nX: " + b"a" * 20_000 + b"\r\n\r\n",
            "did not answer its CONNECT like an HTTP proxy",
        ),
        (b"HTTP/1.1 200 OK\r\n", "did not answer its CONNECT like an HTTP proxy"),  # then hangs up
    ],
)
async def test_a_connect_reply_that_opens_no_tunnel_is_named_in_our_words(reply: bytes, why: str) -> None:
    started = time.monotonic()

    async def connect_proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(reply)
        await writer.drain()
        writer.close()

    async with relay_before(connect_proxy, 2) as relay:
        assert (await relayed(relay, b"open.spotify.com", 443))[:4] == bytes([5, 0, 5, 1])
        assert relay.failure_since(started) == why


async def quiet_tunnels(
    count: int, *, read_to_end: bool, max_tunnels: int = MAX_TUNNELS, idle_s: float = TUNNEL_IDLE_S
) -> list[bytes]:
    """What each of ``count`` clients reads from a relay (with these limits) in front of a CONNECT proxy
    that opens every tunnel and never says a word more: the reply, or up to the end of stream."""
    held: list[asyncio.StreamWriter] = []

    async def connect_proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        held.append(writer)

    answers = []
    try:
        async with relay_before(connect_proxy, 5, max_tunnels=max_tunnels, idle_s=idle_s) as relay:
            address = (await relay.address()).removeprefix("socks5://").rsplit(":", 1)
            for _ in range(count):
                reader, writer = await asyncio.open_connection(*address)
                writer.write(connect(3, bytes([16]) + b"open.spotify.com"))
                async with asyncio.timeout(3):  # well within the relay's 5 s connect timeout
                    try:
                        answers.append(
                            await (reader.read() if read_to_end else reader.readexactly(len(SOCKS_OK)))
                        )
                    except (ConnectionResetError, asyncio.IncompleteReadError):
                        answers.append(b"")  # hung up on
    finally:
        for writer in held:
            writer.close()
    return answers


async def test_tunnels_beyond_the_cap_are_turned_away_at_once() -> None:
    answers = await quiet_tunnels(3, read_to_end=False, max_tunnels=2)
    assert answers == [SOCKS_OK, SOCKS_OK, b""]  # hung up on, not left waiting for the handshake


async def test_a_tunnel_silent_both_ways_is_cut_after_the_idle_time() -> None:
    assert await quiet_tunnels(1, read_to_end=True, idle_s=0.2) == [SOCKS_OK]  # then the end of stream


async def test_a_shut_relay_listens_anew_on_the_next_use() -> None:
    allowed = spotify_destinations("https://open.spotify.com/", {})
    relay = Relay(Proxy("http", "127.0.0.1", free_port()), {}, allowed, ssl.create_default_context(), 1)
    first = (await relay.address()).removeprefix("socks5://").rsplit(":", 1)
    relay.shut()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection(*first)
    assert (await relayed(relay, b"example.com", 443))[:4] == bytes([5, 0, 5, 2])  # listening again
    await relay.close()
