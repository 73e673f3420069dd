"""A stored error must not keep alive what it was raised through (issue 24: a failed read's body)."""

from __future__ import annotations

import gc
import weakref

import orjson
import pytest

from spotify_tokener.domain.errors import (
    BrowserMissing,
    FetchTimeout,
    RateLimited,
    TokenError,
    UpstreamError,
    failure_record,
    read_failure_record,
)


class Body:
    """Stands for a 10 MB body: a local of the frame the error was raised from."""


def failed_read(body: Body) -> None:
    try:
        raise OSError("curl's error")
    except OSError:
        raise UpstreamError("Spotify's answer is too long") from None


def caught(body: Body) -> UpstreamError:
    try:
        failed_read(body)
    except UpstreamError as error:
        return error
    raise AssertionError("no error")


def test_a_kept_error_holds_no_frame_of_its_raising() -> None:
    body = Body()
    alive = weakref.ref(body)
    error = caught(body).kept()
    del body
    gc.collect()
    assert alive() is None
    assert str(error) == "Spotify's answer is too long"


def test_without_kept_the_frame_holds_the_body() -> None:
    body = Body()
    alive = weakref.ref(body)
    error = caught(body)
    del body
    gc.collect()
    assert alive() is not None and error.__traceback__ is not None


@pytest.mark.parametrize(
    "error",
    [
        RateLimited("Spotify rate-limited the token request (429)", retry_after=12.5),
        UpstreamError("Spotify answered the token request with HTTP 500"),
    ],
)
def test_a_failure_another_replica_recorded_comes_back_as_the_same_error(error: TokenError) -> None:
    rebuilt = read_failure_record(orjson.dumps(failure_record(error)))
    assert type(rebuilt) is type(error)
    assert (str(rebuilt), rebuilt.retry_after, rebuilt.status) == (
        str(error),
        error.retry_after,
        error.status,
    )


def test_two_identical_failures_are_still_told_apart() -> None:
    error = UpstreamError("same")
    assert failure_record(error) != failure_record(error)


def test_an_unknown_or_broken_record_is_an_upstream_error() -> None:
    assert type(read_failure_record(b'{"error": "FromANewerVersion", "message": "why"}')) is UpstreamError
    assert str(read_failure_record(b"{not json")) == "another replica's fetch failed"
    assert type(read_failure_record(b'{"kind": "RateLimited"}')) is UpstreamError


def test_only_failures_about_spotify_are_taken_from_another_replica() -> None:
    for own_trouble in (BrowserMissing("no Chromium found"), FetchTimeout("no token within 20 s")):
        rebuilt = read_failure_record(orjson.dumps(failure_record(own_trouble)))
        assert (type(rebuilt), str(rebuilt)) == (UpstreamError, "another replica's fetch failed")


def test_a_shared_message_is_kept_short() -> None:
    assert len(str(read_failure_record(orjson.dumps(failure_record(UpstreamError("x" * 5000)))))) == 200


@pytest.mark.parametrize("retry_after", ['"nan"', '"-inf"', '"inf"', "1e400", "-5", "true", '"12"'])
def test_a_failure_record_with_a_wait_that_is_no_number_of_seconds_is_an_unknown_failure(
    retry_after: str,
) -> None:
    raw = f'{{"error": "RateLimited", "message": "429", "retryAfter": {retry_after}}}'.encode()
    rebuilt = read_failure_record(raw)
    assert (type(rebuilt), str(rebuilt), rebuilt.retry_after) == (
        UpstreamError,
        "another replica's fetch failed",
        None,
    )
