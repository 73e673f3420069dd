"""Per-request counts, as plain ints that the metrics read when Prometheus scrapes.

Only the event loop writes them, so no lock (``prometheus_client``'s counters take one per increment,
which the hot answer cannot afford). The hot answer's one increment is a 200 on ``/api/token`` and an
anonymous hit, folded in here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from spotify_tokener.domain.token import KINDS, Kind

OTHER_ROUTE = "other"  # every path the API does not serve: a scanner cannot add series
HIT, MISS, ERROR = "hit", "miss", "error"
RESULTS = (HIT, MISS, ERROR)


class RequestCounts:
    __slots__ = ("_hot_route", "_responses", "_routes", "_tokens", "hot_hits")

    def __init__(self, routes: Iterable[str], hot_route: str) -> None:
        self._routes = frozenset(routes)
        self._hot_route = hot_route
        self._responses: Counter[tuple[str, int]] = Counter()
        self._tokens: Counter[tuple[Kind, str]] = Counter()
        self.hot_hits = 0  # answers of the hot path, bumped by the app itself

    def responded(self, path: str, status: int) -> None:
        self._responses[path if path in self._routes else OTHER_ROUTE, status] += 1

    def token_answer(self, kind: Kind, result: str) -> None:
        """``result``: HIT (from the cache), MISS (waited for a fetch) or ERROR (no token given)."""
        self._tokens[kind, result] += 1

    def responses(self) -> dict[tuple[str, int], int]:
        """Answers by (route, status), the hot ones included."""
        return dict(self._responses + Counter({(self._hot_route, 200): self.hot_hits}))

    def token_answers(self) -> dict[tuple[Kind, str], int]:
        """Token answers by (kind, result), every pair present, the hot ones included."""
        found = {(kind, result): 0 for kind in KINDS for result in RESULTS} | self._tokens
        found["anonymous", HIT] += self.hot_hits
        return found
