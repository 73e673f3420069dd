"""Each way Spotify's token call can fail, the status a client then gets, and the cause it reads."""

from __future__ import annotations

import pytest

from tests.fake_spotify import Answer

# An attempt's time budget in the fault tests: a hang costs this much, and a healthy page load must fit
# in it with room to spare even on a machine running two test suites at once.
HANG_TIMEOUT_S = 5

FAULTS = [
    pytest.param(Answer("status", status=500), 502, "HTTP 500", id="500"),
    pytest.param(Answer("status", status=403), 502, "refused the token request (403)", id="403"),
    # Retry-After 1 s: still longer than the test's retry delay, so it governs the wait before a retry.
    pytest.param(Answer("rate_limited", retry_after="1"), 503, "rate-limited", id="429"),
    pytest.param(Answer("rate_limited"), 503, "rate-limited", id="429-no-retry-after"),
    pytest.param(Answer("malformed"), 502, "malformed", id="malformed-json"),
    pytest.param(Answer("truncated"), 502, "malformed", id="truncated-json"),
    pytest.param(Answer("error_body"), 502, "with HTTP 400", id="error-body"),
    pytest.param(Answer("expired"), 502, "expired or about to expire", id="expired-token"),
    pytest.param(Answer("short"), 502, "expired or about to expire", id="short-token"),
    pytest.param(Answer("hang"), 504, f"no token from Spotify within {HANG_TIMEOUT_S} s", id="hang"),
]

# One fault of each kind the service handles differently once a token is cached (a 5xx or an unusable
# answer, a 429 with and without Retry-After, a token refused on arrival, a hang). The others differ
# only in the cause's words, which FAULTS tests without a cached token.
HEALING_FAULTS = [
    case
    for case in FAULTS
    if case.id in {"500", "429", "429-no-retry-after", "malformed-json", "short-token", "hang"}
]
