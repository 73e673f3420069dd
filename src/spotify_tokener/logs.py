"""Log set-up: one line per event on stderr, readable text or JSON, Granian's chatter kept out.

Granian's own loggers propagate to the root logger, so its lines take the same handler and format as
ours; its access log is off (health checks would flood the log).
"""

from __future__ import annotations

import logging
from typing import IO, Any, Literal

from pythonjsonlogger.orjson import OrjsonFormatter

LogFormat = Literal["text", "json"]

GRANIAN_LOGGING: dict[str, Any] = {
    "loggers": {
        "_granian": {"handlers": [], "propagate": True},
        "granian.access": {"handlers": [], "propagate": False},
    },
}


def configure_logging(level: str, log_format: LogFormat = "text", stream: IO[str] | None = None) -> None:
    """Replace whatever handlers the root logger has with one on ``stream`` (stderr by default).

    A JSON line has "level", "logger", "message", "time" (RFC 3339, UTC), "exc_info" (the formatted
    traceback) when there is one, and the fields passed with ``extra=``."""
    handler = logging.StreamHandler(stream)
    names = {"levelname": "level", "name": "logger"}
    json = OrjsonFormatter([*names, "message"], rename_fields=names, timestamp="time")
    text = logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    handler.setFormatter(json if log_format == "json" else text)
    logging.basicConfig(level=level, handlers=[handler], force=True)
    logging.getLogger("asyncio").setLevel(logging.WARNING)
