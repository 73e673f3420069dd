from __future__ import annotations

import socket

import pytest

from spotify_tokener.http.server import exposure_warning, refuse_a_taken_port
from spotify_tokener.settings import Settings


def test_listening_beyond_loopback_without_a_key_is_warned_about() -> None:
    warning = exposure_warning(Settings.build(host="0.0.0.0"))
    assert warning is not None
    assert "TOKENER_API_KEY" in warning
    assert exposure_warning(Settings.build(host="127.0.0.1")) is None
    assert exposure_warning(Settings.build(host="0.0.0.0", api_key="k")) is None


@pytest.mark.parametrize("shared", [False, True], ids=["plain", "so_reuseport"])
def test_a_taken_port_is_refused(shared: bool) -> None:
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, int(shared))
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError, match="in use"):
            refuse_a_taken_port("127.0.0.1", taken.getsockname()[1])


def test_a_free_port_is_left_free() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    refuse_a_taken_port("127.0.0.1", port)
    with socket.socket() as after:
        after.bind(("127.0.0.1", port))
