from __future__ import annotations

import pytest

from spotify_tokener.domain.errors import (
    BrowserMissing,
    FetchTimeout,
    RateLimited,
    TokenError,
    UpstreamError,
    error_named,
)
from spotify_tokener.replicas.records import dump_failure, load_failure, redacted


@pytest.mark.parametrize(
    "error",
    [
        RateLimited("Spotify rate-limited the token request (429)", retry_after=12.5),
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


def test_only_failures_about_spotify_are_taken_from_another_replica() -> None:
    for own_trouble in (BrowserMissing("no Chromium found"), FetchTimeout("no token within 20 s")):
        rebuilt = load_failure(dump_failure(own_trouble))
        assert (type(rebuilt), str(rebuilt)) == (UpstreamError, "another replica's fetch failed")


def test_a_shared_message_is_kept_short() -> None:
    assert len(str(load_failure(dump_failure(UpstreamError("x" * 5000))))) == 200


@pytest.mark.parametrize("retry_after", ['"nan"', '"-inf"', '"inf"', "1e400", "-5", "true", '"12"'])
def test_a_failure_record_with_a_wait_that_is_no_number_of_seconds_is_an_unknown_failure(
    retry_after: str,
) -> None:
    raw = f'{{"error": "RateLimited", "message": "429", "retryAfter": {retry_after}}}'.encode()
    rebuilt = load_failure(raw)
    assert (type(rebuilt), str(rebuilt), rebuilt.retry_after) == (
        UpstreamError,
        "another replica's fetch failed",
        None,
    )


def test_the_address_in_logs_has_no_password() -> None:
    assert redacted("redis://user:pw@cache.internal:6380/2?password=x") == "redis://cache.internal:6380/2"
    assert redacted("redis://localhost") == "redis://localhost:6379"
