"""Real proxies started by the tests: Debian's ``tinyproxy`` (HTTP, basic auth) and ``microsocks``
(SOCKS5, username and password), and an https one made of tinyproxy behind a TLS front.

Each leaves from an address of its own on the loopback network (127.0.0.x), so the fake Spotify can
tell which proxy carried a call by the address it came from: the proof that traffic went through a
proxy is the fake's and the proxy's, never the service's word.
"""

from __future__ import annotations

import contextlib
import select
import shutil
import socket
import socketserver
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import trustme

from tests import processes

USER = "tokener"
PASSWORD = "proxy-pass-Zq81"


P = TypeVar("P", bound="ProxyProcess")


@contextlib.contextmanager
def started(proxy: P) -> Iterator[P]:
    """``proxy`` running for the ``with`` block (a test's, or the benchmark's)."""
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


def _executable(name: str) -> str:
    found = shutil.which(name) or next(
        (str(path) for path in (Path("/usr/bin") / name, Path("/usr/sbin") / name) if path.exists()), None
    )
    assert found, f"{name} is missing: `make test` installs it (apt-get install {name})"
    return found


class ProxyProcess:
    """One proxy on ``port``, leaving from ``leaves_from``; ``stop`` and ``start`` keep both."""

    scheme = ""

    def __init__(self, port: int, leaves_from: str, directory: Path) -> None:
        self.port = port
        self.leaves_from = leaves_from
        self.directory = directory
        self._process: subprocess.Popen[bytes] | None = None

    def url(self, user: str = USER, password: str = PASSWORD) -> str:
        return f"{self.scheme}://{user}:{password}@127.0.0.1:{self.port}"

    @property
    def label(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> ProxyProcess:
        self._process = processes.start(self.command(), self._listens)
        return self

    def stop(self) -> None:
        processes.stop(self._process)
        self._process = None

    def _listens(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False


class Tinyproxy(ProxyProcess):
    scheme = "http"

    @property
    def log(self) -> str:
        path = self.directory / "tinyproxy.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def command(self) -> list[str]:
        config = self.directory / "tinyproxy.conf"
        config.write_text(
            f"Port {self.port}\nListen 127.0.0.1\nBind {self.leaves_from}\nTimeout 30\nMaxClients 64\n"
            f'LogLevel Connect\nLogFile "{self.directory / "tinyproxy.log"}"\n'
            f"BasicAuth {USER} {PASSWORD}\n"
        )
        return [_executable("tinyproxy"), "-d", "-c", str(config)]


class Microsocks(ProxyProcess):
    scheme = "socks5"

    def command(self) -> list[str]:
        host = ["-i", "127.0.0.1", "-p", str(self.port), "-b", self.leaves_from]
        return [_executable("microsocks"), *host, "-u", USER, "-P", PASSWORD]


class TlsFront(ProxyProcess):
    """An https proxy: TLS on the way in, then the bytes go to a plain proxy behind (tinyproxy)."""

    scheme = "https"

    def __init__(self, port: int, behind: ProxyProcess, certificate: trustme.LeafCert) -> None:
        super().__init__(port, behind.leaves_from, behind.directory)
        self.behind = behind
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        certificate.configure_cert(self._context)
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True

    def start(self) -> TlsFront:
        """The front alone: the proxy behind it is started and stopped by its owner."""
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[socketserver.BaseRequestHandler]:
        front = self

        class Forward(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                try:
                    inner = front._context.wrap_socket(self.request, server_side=True)
                except (ssl.SSLError, OSError):
                    return  # a client that does not trust the certificate hangs up here
                with inner, socket.create_connection(("127.0.0.1", front.behind.port)) as behind:
                    _pipe(inner, behind)

        return Forward


def _pipe(one: socket.socket, other: socket.socket) -> None:
    """Copy both ways until either side closes (TLS may hold decrypted bytes select cannot see)."""
    sockets = [one, other]
    while True:
        readable, _, _ = select.select(sockets, [], [], 30)
        if not readable:
            return
        for source in readable:
            target = other if source is one else one
            while True:
                try:
                    data = source.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                target.sendall(data)
                if not (isinstance(source, ssl.SSLSocket) and source.pending()):
                    break
