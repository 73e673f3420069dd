"""Real proxies started by the tests: Debian's ``tinyproxy`` (HTTP, basic auth) and ``microsocks``
(SOCKS5, username and password).

Each leaves from an address of its own on the loopback network (127.0.0.x), so the fake Spotify can
tell which proxy carried a call by the address it came from: the proof that traffic went through a
proxy is the fake's and the proxy's, never the service's word.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

START_TIMEOUT_S = 10.0
USER = "tokener"
PASSWORD = "proxy-pass-Zq81"


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
        self._process = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._listens():
            assert self._process.poll() is None, f"{self.command()[0]} exited at start"
            assert time.monotonic() < deadline, f"{self.command()[0]} did not start"
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
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
