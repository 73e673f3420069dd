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
from spotify_tokener.domain.token import Token
from spotify_tokener.replicas.records import (
    dump_failure,
    dump_shared_token,
    load_failure,
    load_shared_token,
    redacted,
)


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


@pytest.mark.parametrize("anonymous", [True, False])
def test_a_shared_token_reads_back_unchanged(anonymous: bool) -> None:
    token = Token("BQshared", NOW + 3_600_000, "client", anonymous)
    shared = load_shared_token(dump_shared_token(token, NOW - 1000), NOW)
    assert shared is not None
    assert (shared.token, shared.fetched_at_ms) == (token, NOW - 1000)


NOW = 1_700_000_000_000
TEN_YEARS_MS = 10 * 365 * 86_400_000


@pytest.mark.parametrize(
    ("expires_at_ms", "fetched_at_ms"),
    [
        (NOW + TEN_YEARS_MS, NOW),  # adopted even by force=1, renewal due in years
        (NOW + 2 * 3_600_000 + 1, NOW),
        (NOW + 3_600_000, NOW + 60_000),  # fetched in the future: satisfies every forced request
    ],
)
def test_a_token_record_that_cannot_be_spotifys_is_no_token(expires_at_ms: int, fetched_at_ms: int) -> None:
    token = Token("BQfrom-a-tampered-record", expires_at_ms, "client", True)
    assert load_shared_token(dump_shared_token(token, fetched_at_ms), NOW) is None


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


@pytest.mark.parametrize(
    "raw",
    [None, b"", b"[]", b'{"accessToken": ""}', b"\xff", b'{"accessToken": "BQ", "fetchedAtMs": true}'],
)
def test_something_else_in_the_shared_store_is_no_token(raw: bytes | None) -> None:
    assert load_shared_token(raw, NOW) is None


def test_the_address_in_logs_has_no_password() -> None:
    assert redacted("redis://user:pw@cache.internal:6380/2?password=x") == "redis://cache.internal:6380/2"
    assert redacted("redis://localhost") == "redis://localhost:6379"
