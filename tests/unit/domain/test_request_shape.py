"""The token call's shape as learned from a sighting, and rendered again with fresh times."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from spotify_tokener.domain.request_shape import (
    Param,
    Role,
    Sighting,
    default_shape,
    first_matching,
    learn_shape,
    sighted_codes,
)
from spotify_tokener.domain.totp import Secret, totp

SECRET = Secret("=n:b#OuEfH\\fE])e*K", 61)
AT_S = 1_800_000_000
PAGE = "https://open.spotify.com/"


def sighting(query: str) -> Sighting:
    return Sighting(f"https://open.spotify.com/api/token?{query}", AT_S * 1000)


def page_call(**extra: str) -> Sighting:
    code = totp(SECRET.key, AT_S)
    params = {
        "reason": "init",
        "productType": "web-player",
        "totp": code,
        "totpServer": code,
        "totpVer": "61",
    }
    return sighting("&".join(f"{name}={value}" for name, value in {**params, **extra}.items()))


def test_each_parameter_is_told_by_its_value_and_name() -> None:
    shape = learn_shape(
        page_call(sTime=str(AT_S), cTime=str(AT_S * 1000), buildVer="web-player_2026"), SECRET
    )
    assert shape.endpoint == "https://open.spotify.com/api/token"
    assert shape.params == (
        Param("reason", Role.FIXED, "init"),
        Param("productType", Role.FIXED, "web-player"),
        Param("totp", Role.CLIENT_CODE),
        Param("totpServer", Role.SERVER_CODE),
        Param("totpVer", Role.VERSION),
        Param("sTime", Role.SERVER_SECONDS),
        Param("cTime", Role.CLIENT_MS),
        Param("buildVer", Role.FIXED, "web-player_2026"),
    )


def test_a_rendered_call_carries_fresh_codes_in_the_sighted_order() -> None:
    shape = learn_shape(page_call(sTime=str(AT_S)), SECRET)
    later = AT_S + 600
    query = parse_qs(urlsplit(shape.render(SECRET, later, later + 40)).query)
    assert list(query) == ["reason", "productType", "totp", "totpServer", "totpVer", "sTime"]
    assert query["totp"] == [totp(SECRET.key, later)]
    assert query["totpServer"] == [totp(SECRET.key, later + 40)]
    assert query["sTime"] == [str(later + 40)]


def test_the_default_is_the_call_context_describes() -> None:
    query = parse_qs(urlsplit(default_shape(PAGE).render(SECRET, AT_S, AT_S)).query)
    assert query["reason"] == ["init"]
    assert query["productType"] == ["web-player"]
    assert query["totpVer"] == ["61"]


def test_only_the_right_secret_confirms_a_sighting() -> None:
    assert sighted_codes(page_call()) == [totp(SECRET.key, AT_S)] * 2
    assert first_matching([SECRET], page_call()) == SECRET
    assert first_matching([Secret("not-the-secret", 61)], page_call()) is None
    assert first_matching([SECRET], sighting("reason=init")) is None


def test_a_string_that_gives_one_code_of_two_steps_is_not_taken_when_every_code_is_asked_for() -> None:
    chance = Secret("gives-the-page-code-by-chance")
    two_steps = page_call(totp=totp(chance.key, AT_S), totpServer=totp(SECRET.key, AT_S + 60))
    assert first_matching([chance], two_steps) == chance
    assert first_matching([chance, SECRET], two_steps, every_code=True) is None
    own = page_call(totpServer=totp(SECRET.key, AT_S + 60))  # the secret's own codes, two steps apart
    assert first_matching([chance, SECRET], own, every_code=True) == SECRET


def test_a_server_code_minutes_away_from_our_clock_is_still_a_code_not_a_constant() -> None:
    skewed = totp(SECRET.key, AT_S + 240)  # the server's clock four minutes ahead
    shape = learn_shape(page_call(totpServer=skewed), SECRET)
    assert Param("totpServer", Role.SERVER_CODE) in shape.params
