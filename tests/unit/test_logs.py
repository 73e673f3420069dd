"""Log lines: readable text by default, one JSON object per line on request, Granian's included."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from datetime import datetime

import orjson
import pytest
from granian.log import LogLevels
from granian.log import configure_logging as configure_granian_logging

from spotify_tokener.logs import GRANIAN_LOGGING, configure_logging

log = logging.getLogger("spotify_tokener.test")


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """Where the configured handler writes; the root logger is put back as it was afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield io.StringIO()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def json_lines(stream: io.StringIO) -> list[dict[str, object]]:
    lines = stream.getvalue().splitlines()
    parsed = [orjson.loads(line) for line in lines]
    assert all(isinstance(item, dict) for item in parsed)
    return parsed


def test_text_by_default(stream: io.StringIO) -> None:
    configure_logging("INFO", stream=stream)
    log.info("token attempt %s ok", "1/4")
    line = stream.getvalue()
    assert line.endswith("INFO    spotify_tokener.test: token attempt 1/4 ok\n")
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(line)


def test_json_has_time_level_logger_and_message(stream: io.StringIO) -> None:
    configure_logging("INFO", "json", stream=stream)
    log.warning("token attempt %s failed: %d ms", "2/4", 412)
    [entry] = json_lines(stream)
    assert set(entry) == {"time", "level", "logger", "message"}
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "spotify_tokener.test"
    assert entry["message"] == "token attempt 2/4 failed: 412 ms"
    assert isinstance(entry["time"], str)
    assert datetime.fromisoformat(entry["time"]).utcoffset() is not None  # with its time zone


def test_json_carries_the_exception_on_the_same_line(stream: io.StringIO) -> None:
    configure_logging("INFO", "json", stream=stream)
    try:
        raise ValueError("bad answer\nover two lines")
    except ValueError:
        log.exception("the refresher hit an unexpected error")
    [entry] = json_lines(stream)
    assert entry["message"] == "the refresher hit an unexpected error"
    assert isinstance(entry["exc_info"], str)
    assert "Traceback" in entry["exc_info"]
    assert "ValueError: bad answer" in entry["exc_info"]


def test_the_level_filters(stream: io.StringIO) -> None:
    configure_logging("WARNING", "json", stream=stream)
    log.info("not shown")
    log.error("shown")
    assert [entry["message"] for entry in json_lines(stream)] == ["shown"]


def test_granians_own_logs_take_the_same_format_and_its_access_log_stays_off(
    stream: io.StringIO,
) -> None:
    configure_logging("INFO", "json", stream=stream)
    configure_granian_logging(LogLevels.error, GRANIAN_LOGGING)  # what Granian does as it starts
    logging.getLogger("_granian").error("worker failed")
    logging.getLogger("granian.access").info('127.0.0.1 - "GET /health HTTP/1.1" 200')
    [entry] = json_lines(stream)
    assert (entry["logger"], entry["message"]) == ("_granian", "worker failed")
