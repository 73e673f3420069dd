"""Log set-up: one readable line per event on stderr, and Granian's chatter kept out."""

from __future__ import annotations

import logging
from typing import Any

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

GRANIAN_LOGGING: dict[str, Any] = {
    "loggers": {
        "_granian": {"handlers": [], "propagate": True},
        "granian.access": {"handlers": [], "propagate": False},
    },
}


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level, format=FORMAT, force=True)
    for noisy in ("asyncio",):
        logging.getLogger(noisy).setLevel(logging.WARNING)
