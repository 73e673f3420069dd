"""What the service tells the outside about its fetches, without knowing who listens.

The service reports each fetch attempt here; the metrics module at the edge turns the reports into
Prometheus series. Keeping this a small protocol keeps ``prometheus_client`` out of the service and
lets the service run with nobody listening.
"""

from __future__ import annotations

from typing import Literal, Protocol

Kind = Literal["anonymous", "account"]
OUTCOME_OK = "ok"  # a failed attempt reports its error's ``outcome`` (errors.py) instead


class FetchObserver(Protocol):
    def fetch_attempt(self, kind: Kind, outcome: str, seconds: float, attempt: int) -> None:
        """One attempt ended: ``attempt`` counts from 1, so anything above 1 was a retry."""


class NoObserver:
    """The default: nothing is recorded."""

    def fetch_attempt(self, kind: Kind, outcome: str, seconds: float, attempt: int) -> None:
        return None


NO_OBSERVER = NoObserver()
