"""Settings sized for unit tests; the in-memory harvester they drive lives in tests/scripted.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from spotify_tokener.settings import Settings


@pytest.fixture
def unit_settings() -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "retry_base_delay": 0.01,
            "retries": 3,
            "force_min_interval": 0,
            **overrides,
        }
        return Settings(**values)

    return make
