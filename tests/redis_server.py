"""A real ``redis-server`` on a free local port, started and stopped by the tests themselves."""

from __future__ import annotations

import shutil
import socket
import subprocess

from tests import processes


class RedisServer:
    """One server process; ``stop`` and ``start`` again keep the port, as a restarted Redis would."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        executable = shutil.which("redis-server")
        assert executable, "redis-server is missing: `make test` installs it (apt-get install redis-server)"
        command = [
            executable,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        self._process = processes.start(command, self._answers)
        return self

    def stop(self) -> None:
        processes.stop(self._process)
        self._process = None

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as connection:
                connection.sendall(b"PING\r\n")
                return connection.recv(16).startswith(b"+PONG")
        except OSError:
            return False
