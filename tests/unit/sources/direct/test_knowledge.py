"""What the direct source learns from candidates and sightings, and what replicas share of it."""

from __future__ import annotations

import orjson
import pytest

from spotify_tokener.domain.request_shape import Sighting, default_shape
from spotify_tokener.domain.totp import Secret, totp
from spotify_tokener.sources.direct.knowledge import (
    HANDFUL,
    Knowledge,
    Origin,
    candidates_in,
    dump_knowledge,
    knowledge_matching,
    load_knowledge,
)

PAGE = "https://open.spotify.com/"
ENDPOINT = default_shape(PAGE).endpoint
SECRET = Secret("=n:b#OuEfH\\fE])e*K", 61)
AT_S = 1_800_000_000


def page_call(secret: Secret, version: str = "61") -> Sighting:
    code = totp(secret.key, AT_S)
    url = f"{ENDPOINT}?reason=init&totp={code}&totpServer={code}&totpVer={version}"
    return Sighting(url, AT_S * 1000)


def test_an_unversioned_candidate_that_reproduces_the_code_takes_the_sighted_version() -> None:
    knowledge = knowledge_matching([Secret("decoy-string-1"), Secret(SECRET.value)], page_call(SECRET, "63"))
    assert knowledge is not None
    assert knowledge.secret == Secret(SECRET.value, 63)
    assert (knowledge.origin, knowledge.proven) == (Origin.PAGE, False)  # one of many: only likely


def test_an_unversioned_candidate_that_reproduces_codes_of_two_steps_is_proven_at_once() -> None:
    code, ahead = totp(SECRET.key, AT_S), totp(SECRET.key, AT_S + 60)  # the server's clock a minute on
    call = Sighting(f"{ENDPOINT}?totp={code}&totpServer={ahead}&totpVer=61", AT_S * 1000)
    knowledge = knowledge_matching([Secret("decoy-string-1"), Secret(SECRET.value)], call, Origin.MEMORY)
    assert knowledge is not None
    assert (knowledge.secret, knowledge.proven) == (SECRET, True)


def test_a_versioned_candidate_that_reproduces_the_code_is_proven_at_once() -> None:
    knowledge = knowledge_matching([Secret("decoy-string-1"), SECRET], page_call(SECRET))
    assert knowledge is not None
    assert (knowledge.secret, knowledge.proven) == (SECRET, True)


def test_no_candidate_that_misses_the_code_is_proven() -> None:
    assert knowledge_matching([Secret("decoy-string-1", 61)], page_call(SECRET)) is None


def test_versioned_candidates_of_every_script_come_first() -> None:
    scripts = [b'const a = "plain-string-one";', b'x={secret:"versioned-one",version:61}']
    assert candidates_in(scripts).secrets[0] == Secret("versioned-one", 61)


def test_of_a_bundle_crowded_with_versioned_decoys_the_newest_few_are_kept_and_match_only_likely() -> None:
    decoys = ";".join(f'x={{secret:"decoy-secret-{n:04}",version:{n}}}' for n in range(1, 300))
    script = f"{decoys};y={{secret:{orjson.dumps(SECRET.value).decode()},version:999}}".encode()
    candidates, crowded = candidates_in([script])
    assert crowded
    assert [secret.version for secret in candidates] == [999, *range(299, 299 - HANDFUL + 1, -1)]
    knowledge = knowledge_matching(candidates, page_call(SECRET), crowded=crowded)
    assert knowledge is not None
    assert (knowledge.secret, knowledge.proven) == (Secret(SECRET.value, 999), False)
    assert not candidates_in([b'x={secret:"decoy-secret-0001",version:60}']).crowded


def test_what_replicas_share_reads_back_as_another_replicas() -> None:
    knowledge = Knowledge(SECRET, default_shape(PAGE), Origin.PAGE, proven=True)
    loaded = load_knowledge(dump_knowledge(knowledge, 1234), ENDPOINT)
    assert loaded == (Knowledge(SECRET, default_shape(PAGE), Origin.REPLICA, proven=True), 1234)


@pytest.mark.parametrize(
    "raw",
    [
        None,
        b"",
        b"{not json",
        b"[]",
        orjson.dumps(
            {
                "secret": "s",
                "version": 61,
                "endpoint": "https://evil.example/api/token",
                "params": [],
                "learnedAtMs": 1,
            }
        ),
        orjson.dumps(
            {
                "secret": "s",
                "version": 61,
                "endpoint": ENDPOINT,
                "params": [["a", "nope", ""]],
                "learnedAtMs": 1,
            }
        ),
        orjson.dumps({"secret": "s", "version": "61", "endpoint": ENDPOINT, "params": [], "learnedAtMs": 1}),
        orjson.dumps({"secret": "s", "endpoint": ENDPOINT, "params": [], "learnedAtMs": 1}),
    ],
    ids=["none", "empty", "not-json", "not-an-object", "elsewhere", "unknown-role", "bad-version", "missing"],
)
def test_a_record_that_does_not_read_well_or_calls_elsewhere_is_ignored(raw: bytes | None) -> None:
    assert load_knowledge(raw, ENDPOINT) is None
