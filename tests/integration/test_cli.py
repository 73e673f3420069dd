"""The command line, run as a user runs it: help and version, settings refused at start with one line
each (text or JSON), a port that is taken."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TOKENER_")}
    return subprocess.run(
        [sys.executable, "-m", "spotify_tokener", *args],
        env={**environment, "TOKENER_STATE_DIR": "", **env},  # not the user's own state folder
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_cli_help_and_version() -> None:
    assert "--port" in run_cli("--help").stdout
    assert run_cli("--version").stdout.startswith("spotify-tokener ")


def json_lines(stderr: str) -> list[dict[str, str]]:
    """Every line parsed alone, as a log pipeline reads them, each in the shape of the service's own."""
    entries = [json.loads(line) for line in stderr.splitlines()]
    assert entries, "nothing on stderr"
    for entry in entries:
        assert set(entry) == {"level", "logger", "message", "time"}, entry
        assert (entry["level"], entry["logger"]) == ("ERROR", "spotify_tokener.cli")
    return entries


def test_bad_settings_exit_with_one_line_each() -> None:
    result = run_cli(TOKENER_FETCH_TIMEOUT="soon", PORT="70000", TOKENER_PROXY="ftp://alice:s3cret@proxy:21")
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 3
    assert any(line.startswith("invalid setting TOKENER_FETCH_TIMEOUT: ") for line in lines)
    assert any(line.startswith("invalid setting PORT (or TOKENER_PORT): ") for line in lines)
    assert any(line.startswith("invalid setting TOKENER_PROXY: ftp:// is not supported;") for line in lines)
    assert "s3cret" not in result.stderr


def test_bad_settings_are_json_lines_when_json_is_asked_for() -> None:
    result = run_cli(
        TOKENER_LOG_FORMAT="json",
        TOKENER_FETCH_TIMEOUT="soon",
        PORT="70000",
        TOKENER_REDIS_URL="redis://:s3cret@cache:notaport/0",
    )
    assert result.returncode == 2
    messages = [entry["message"] for entry in json_lines(result.stderr)]
    assert len(messages) == 3
    for variable in ("TOKENER_FETCH_TIMEOUT", "PORT (or TOKENER_PORT)", "TOKENER_REDIS_URL"):
        assert any(message.startswith(f"invalid setting {variable}: ") for message in messages), variable
    assert "s3cret" not in result.stderr


def test_an_invalid_log_format_reports_in_text() -> None:
    result = run_cli(TOKENER_LOG_FORMAT="JSON", TOKENER_FETCH_TIMEOUT="soon")
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 2
    assert all(line.startswith("invalid setting TOKENER_") for line in lines)


@pytest.mark.parametrize(
    ("log_format", "shared"),
    [
        pytest.param("text", False, id="text"),
        pytest.param("json", False, id="json"),
        pytest.param("text", True, id="another-instance"),  # Granian listens with SO_REUSEPORT
    ],
)
def test_a_busy_port_is_a_clear_error(log_format: str, shared: bool) -> None:
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, int(shared))
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(
            HOST="127.0.0.1",
            PORT=str(port),
            TOKENER_SOURCES="direct,embed",
            TOKENER_LOG_FORMAT=log_format,
        )
    assert result.returncode == 1
    expected = f"spotify-tokener: cannot serve on 127.0.0.1:{port}: "
    if log_format == "json":
        [entry] = json_lines(result.stderr)
        assert entry["message"].startswith(expected)
    else:
        assert result.stderr.startswith(expected)
        assert len(result.stderr.splitlines()) == 1


def test_a_mistyped_setting_is_warned_of_once_at_start() -> None:
    with socket.socket() as taken:  # a port taken: the service stops right after its start-up lines
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = run_cli(
            HOST="127.0.0.1",
            PORT=str(taken.getsockname()[1]),
            TOKENER_SORCES="browser-typo-value",
            TOKENER_LOG_FORMAT="json",
        )
    entries = [json.loads(line) for line in result.stderr.splitlines()]
    warned = [entry["message"] for entry in entries if entry["level"] == "WARNING"]
    assert warned == ["TOKENER_SORCES is not a setting and is ignored; did you mean TOKENER_SOURCES?"]
    assert "browser-typo-value" not in result.stderr
