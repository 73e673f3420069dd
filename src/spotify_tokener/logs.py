"""Log set-up: one line per event on stderr, readable text or JSON, Granian's chatter kept out.

Granian's own loggers propagate to the root logger, so its lines take the same handler and format as
ours; its access log is off (health checks would flood the log).
"""

from __future__ import annotations

import logging
from typing import IO, Any, Literal

from pythonjsonlogger.orjson import OrjsonFormatter

LogFormat = Literal["text", "json"]

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
# JSON lines: these record attributes under shorter names, plus "time" (RFC 3339, UTC) and, when
# there is one, "exc_info" (the formatted traceback). Fields passed with ``extra=`` are kept too.
JSON_FIELDS = ("levelname", "name", "message")
JSON_NAMES = {"levelname": "level", "name": "logger"}
JSON_TIME_FIELD = "time"

GRANIAN_LOGGING: dict[str, Any] = {
    "loggers": {
        "_granian": {"handlers": [], "propagate": True},
        "granian.access": {"handlers": [], "propagate": False},
    },
}


def log_formatter(log_format: LogFormat) -> logging.Formatter:
    if log_format == "json":
        return OrjsonFormatter(JSON_FIELDS, rename_fields=JSON_NAMES, timestamp=JSON_TIME_FIELD)
    return logging.Formatter(FORMAT)


def configure_logging(level: str, log_format: LogFormat = "text", stream: IO[str] | None = None) -> None:
    """Replace whatever handlers the root logger has with one on ``stream`` (stderr by default)."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(log_formatter(log_format))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    logging.getLogger("asyncio").setLevel(logging.WARNING)
