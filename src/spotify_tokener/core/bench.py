"""A bench: what is known of something that can fail and be set aside for a while (a proxy, a token
source). Each keeps its own rule for how long; what is recorded, and what ``status`` and the metrics
read of it, is the same for both."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Bench:
    failures: int = 0  # in a row
    benched_until_ms: int = 0
    last_error: str | None = None
    last_success_ms: int | None = None
    last_failure_ms: int | None = None

    def usable(self, now_ms: int) -> bool:
        return self.benched_until_ms <= now_ms
