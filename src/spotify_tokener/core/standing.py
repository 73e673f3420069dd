"""What is known of something that can fail and cool down for a while (a proxy, a token source): each
keeps its own rule for how long, and what ``status`` and the metrics read of them is the same."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Standing:
    failures: int = 0  # in a row
    retry_at_ms: int = 0  # when its cool-down ends
    last_error: str | None = None
    last_success_ms: int | None = None
    last_failure_ms: int | None = None

    def usable(self, now_ms: int) -> bool:
        return self.retry_at_ms <= now_ms
