from __future__ import annotations

import orjson
import pytest

from spotify_tokener.domain.errors import ProxyRule, RateLimited, Refused, UpstreamError
from spotify_tokener.domain.token import (
    Token,
    kind_of,
    parse_retry_after,
    parse_token_response,
    read_token_record,
    token_record,
)

NOW_MS = 1_800_000_000_000
HOUR_MS = 3_600_000


def body(**overrides: object) -> bytes:
    payload: dict[str, object] = {
        "clientId": "client",
        "accessToken": "BQsecret",
        "accessTokenExpirationTimestampMs": NOW_MS + HOUR_MS,
        "isAnonymous": True,
        "_notes": "ignored",
    }
    payload.update(overrides)
    return orjson.dumps(payload)


def parse(status: int = 200, raw: bytes | None = None, headers: dict[str, str] | None = None) -> Token:
    return parse_token_response(status, headers or {}, body() if raw is None else raw, now_ms=NOW_MS)


def test_a_good_answer_becomes_a_token() -> None:
    assert parse() == Token("BQsecret", NOW_MS + HOUR_MS, "client", True)


def test_an_account_token_keeps_its_flag() -> None:
    assert parse(raw=body(isAnonymous=False)).is_anonymous is False


def test_repr_never_shows_the_secret() -> None:
    assert "BQsecret" not in repr(parse())


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "malformed"),
        (b'{"accessToken": "BQ', "malformed"),
        (b"[1, 2]", "malformed"),
        (body(error={"code": 400, "message": "Invalid TOTP"}), "with an error"),
        (body(accessToken=""), "no access token"),
        (body(accessToken=None), "no access token"),
        (body(accessTokenExpirationTimestampMs="soon"), "no valid expiry"),
        (body(accessTokenExpirationTimestampMs=True), "no valid expiry"),
        (body(isAnonymous="yes"), "malformed"),
    ],
)
def test_unusable_answers_are_rejected_with_a_safe_cause(raw: bytes, message: str) -> None:
    with pytest.raises(UpstreamError, match=message) as caught:
        parse(raw=raw)
    assert "Invalid TOTP" not in str(caught.value)
    assert "BQ" not in str(caught.value)


@pytest.mark.parametrize("status", [400, 404, 500, 502, 503])
def test_http_failures_name_only_the_status(status: int) -> None:
    with pytest.raises(UpstreamError, match=f"HTTP {status}$") as caught:
        parse(status=status, raw=b"<h1>upstream page</h1>")
    assert caught.value.failure.proxy is ProxyRule.INNOCENT  # a proxy does not make a 5xx go away


def test_a_refusal_is_told_apart_as_one_a_different_exit_may_not_get() -> None:
    with pytest.raises(Refused, match=r"^Spotify refused the token request \(403\)$") as caught:
        parse(status=403, raw=b"<h1>blocked, request id 123</h1>")
    assert caught.value.failure.proxy is not ProxyRule.INNOCENT


def test_rate_limit_carries_retry_after() -> None:
    with pytest.raises(RateLimited) as caught:
        parse(status=429, headers={"retry-after": "17"})
    assert caught.value.retry_after == 17
    assert caught.value.status == 503


def test_rate_limit_without_retry_after() -> None:
    with pytest.raises(RateLimited) as caught:
        parse(status=429)
    assert caught.value.retry_after is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("0", 0.0),
        (" 120 ", 120.0),
        ("-5", None),
        ("soon", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 60.0),
        ("Wed, 21 Oct 2015 07:26:00 GMT", 0.0),
    ],
)
def test_retry_after_forms(value: str | None, expected: float | None) -> None:
    now_s = 1445412420.0  # 2015-10-21 07:27:00 UTC
    assert parse_retry_after(value, now_s) == expected


def test_a_cookie_asks_for_an_accounts_token_and_no_cookie_for_the_anonymous_one() -> None:
    assert kind_of("AQ-cookie") == "account"
    assert kind_of(None) == kind_of("") == "anonymous"


def test_a_token_is_alive_until_its_expiry_millisecond() -> None:
    token = Token("BQ-test", expires_at_ms=1_000, client_id="client", is_anonymous=True)
    assert token.is_alive(999)
    assert not token.is_alive(1_000)


@pytest.mark.parametrize("anonymous", [True, False])
def test_a_shared_token_reads_back_unchanged(anonymous: bool) -> None:
    token = Token("BQshared", NOW_MS + 3_600_000, "client", anonymous)
    shared = read_token_record(orjson.dumps(token_record(token, NOW_MS - 1000)), NOW_MS)
    assert shared == (token, NOW_MS - 1000)


TEN_YEARS_MS = 10 * 365 * 86_400_000


@pytest.mark.parametrize(
    ("expires_at_ms", "fetched_at_ms"),
    [
        (NOW_MS + TEN_YEARS_MS, NOW_MS),  # adopted even by force=1, renewal due in years
        (NOW_MS + 2 * 3_600_000 + 1, NOW_MS),
        (NOW_MS + 3_600_000, NOW_MS + 60_000),  # fetched in the future: satisfies every forced request
    ],
)
def test_a_token_record_that_cannot_be_spotifys_is_no_token(expires_at_ms: int, fetched_at_ms: int) -> None:
    token = Token("BQfrom-a-tampered-record", expires_at_ms, "client", True)
    assert read_token_record(orjson.dumps(token_record(token, fetched_at_ms)), NOW_MS) is None


@pytest.mark.parametrize(
    "raw",
    [None, b"", b"[]", b'{"accessToken": ""}', b"\xff", b'{"accessToken": "BQ", "fetchedAtMs": true}'],
)
def test_something_else_in_the_shared_store_is_no_token(raw: bytes | None) -> None:
    assert read_token_record(raw, NOW_MS) is None
