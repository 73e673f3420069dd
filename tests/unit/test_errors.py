from __future__ import annotations

import pytest

from spotify_tokener.errors import (
    BrowserMissing,
    FetchTimeout,
    RateLimited,
    TokenError,
    UpstreamError,
    error_named,
)
from spotify_tokener.redis_coordinator import dump_failure, load_failure


@pytest.mark.parametrize(
    "error",
    [
        RateLimited("Spotify rate-limited the token request (429)", retry_after=12.5),
        FetchTimeout("no token from Spotify within 20 s"),
        BrowserMissing("no Chromium found"),
        UpstreamError("Spotify answered the token request with HTTP 500"),
    ],
)
def test_a_failure_another_replica_recorded_comes_back_as_the_same_error(error: TokenError) -> None:
    rebuilt = load_failure(dump_failure(error))
    assert type(rebuilt) is type(error)
    assert (str(rebuilt), rebuilt.retry_after, rebuilt.status) == (
        str(error),
        error.retry_after,
        error.status,
    )


def test_two_identical_failures_are_still_told_apart() -> None:
    error = UpstreamError("same")
    assert dump_failure(error) != dump_failure(error)


def test_an_unknown_or_broken_record_is_an_upstream_error() -> None:
    assert type(error_named("FromANewerVersion", "why")) is UpstreamError
    assert str(load_failure(b"{not json")) == "another replica's fetch failed"
    assert type(load_failure(b'{"kind": "RateLimited"}')) is UpstreamError
