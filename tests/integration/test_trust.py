"""TOKENER_CA_FILE makes Chromium trust an authority with every check kept: a certificate of that
authority for another name, or an impostor that merely sends the authority's certificate along, is
refused. (Chromium's SPKI pins, tried first, waived every check for the second.)"""

from __future__ import annotations

import socketserver
import ssl
import tempfile
import threading
from collections.abc import Callable, Iterator

import pytest
import trustme

from spotify_tokener.settings import Settings
from tests.conftest import free_port, running_server
from tests.fake_spotify import FakeSpotify

pytestmark = pytest.mark.asyncio

SettingsMaker = Callable[..., Settings]


def server_context(certificate: trustme.LeafCert, sent_along: bytes = b"") -> ssl.SSLContext:
    """A TLS server context presenting ``certificate``, then ``sent_along`` in its chain."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.NamedTemporaryFile(suffix=".pem") as chain:
        chain.write(certificate.private_key_and_cert_chain_pem.bytes() + sent_along)
        chain.flush()
        context.load_cert_chain(chain.name)
    return context


class Impostor:
    """A TLS server on 127.0.0.1 that Chromium is expected to hang up on."""

    def __init__(self, context: ssl.SSLContext) -> None:
        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                try:
                    with context.wrap_socket(self.request, server_side=True) as tls:
                        tls.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                except (ssl.SSLError, OSError):
                    pass

        self.port = free_port()
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True

    def __enter__(self) -> Impostor:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(params=["another-name", "an-unknown-authority-sending-the-trusted-one"])
def impostor(request: pytest.FixtureRequest, fake: FakeSpotify) -> Iterator[Impostor]:
    if request.param == "another-name":
        context = server_context(fake.authority.issue_cert("elsewhere.example"))
    else:
        stranger = trustme.CA().issue_cert("open.spotify.com", "open.spotifycdn.com")
        context = server_context(stranger, sent_along=fake.authority.cert_pem.bytes())
    with Impostor(context) as server:
        yield server


async def test_the_trusted_authority_vouches_for_its_own_names_only(
    impostor: Impostor, make_settings: SettingsMaker
) -> None:
    hosts = ("open.spotify.com", "open.spotifycdn.com")
    rules = ",".join(f"{host}:443:127.0.0.1:{impostor.port}" for host in hosts)
    async with running_server(make_settings(connect_to=rules, retries=0)) as running:
        response = await running.client.get("/api/token")
    assert response.status_code == 502
    assert response.json()["error"].startswith("the Spotify web player could not be loaded (net::ERR_CERT_")
