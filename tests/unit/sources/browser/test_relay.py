"""The relay's SOCKS5 greeting and its host rule; relaying through real proxies is an integration test."""

from __future__ import annotations

import asyncio
import struct

import pytest

from spotify_tokener.domain.egress import Endpoint
from spotify_tokener.sources.browser.relay import HandshakeError, read_connect_request, spotify_host


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


def test_only_spotifys_hosts_and_the_configured_pages_are_relayed() -> None:
    allowed = spotify_host("mirror.example")
    for host in (
        "open.spotify.com",
        "OPEN.SPOTIFY.COM.",
        "open.spotifycdn.com",
        "i.scdn.co",
        "mirror.example",
    ):
        assert allowed(host), host
    for host in ("example.com", "notspotify.com", "spotify.com.evil.example", "127.0.0.1", "scdn.co.uk"):
        assert not allowed(host), host
