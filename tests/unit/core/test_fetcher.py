"""The service reports every fetch attempt to its observer: kind, outcome, time taken, attempt number."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from spotify_tokener.core.service import TokenService
from spotify_tokener.domain.errors import (
    ATTEMPT_FAILURES,
    AccountsDisabled,
    CallerLeft,
    CookieRejected,
    Overloaded,
    ShuttingDown,
    TokenError,
    UpstreamError,
)
from spotify_tokener.domain.token import Kind
from spotify_tokener.settings import Settings
from spotify_tokener.wiring import core_config
from tests.scripted import ScriptedSource

SettingsMaker = Callable[..., Settings]
DELAY_S = 0.02


class RecordingObserver:
    def __init__(self) -> None:
        self.attempts: list[tuple[Kind, str, float, int]] = []

    def attempt_ended(self, kind: Kind, outcome: str, seconds: float, attempt: int) -> None:
        self.attempts.append((kind, outcome, seconds, attempt))


async def test_each_attempt_is_reported_once_with_its_number(unit_settings: SettingsMaker) -> None:
    failure = UpstreamError("Spotify answered the token request with HTTP 500")
    observer = RecordingObserver()
    source = ScriptedSource(failure, failure, delay=DELAY_S)
    service = TokenService(source, core_config(unit_settings(retries=3)), observer=observer)
    await service.get_token()
    outcomes = [(kind, outcome, attempt) for kind, outcome, _, attempt in observer.attempts]
    assert outcomes == [("anonymous", "upstream", 1), ("anonymous", "upstream", 2), ("anonymous", "ok", 3)]
    assert all(seconds >= DELAY_S for _, _, seconds, _ in observer.attempts)


async def test_an_account_whose_cookie_is_refused(unit_settings: SettingsMaker) -> None:
    observer = RecordingObserver()
    source = ScriptedSource(dead_cookies=frozenset({"AQ-dead"}))
    service = TokenService(source, core_config(unit_settings()), observer=observer)
    with pytest.raises(CookieRejected):
        await service.get_token(sp_dc="AQ-dead")
    assert [(kind, outcome) for kind, outcome, _, _ in observer.attempts] == [("account", "cookie_rejected")]


def test_every_error_a_client_may_see_has_its_own_kind_and_a_plain_outcome() -> None:
    """The outcome is a metric label: each kind of failure must be told apart (unless its row says it
    is counted as another), and be a plain word."""
    classes: list[type[TokenError]] = [TokenError]
    for cls in classes:
        classes.extend(cls.__subclasses__())
    assert len({cls.kind for cls in classes}) == len(classes)
    assert all(cls.outcome == (cls.failure.counted_as or cls.kind) for cls in classes)
    assert all(cls.outcome.replace("_", "").isalpha() and cls.outcome.islower() for cls in classes)


def test_every_failure_is_listed_as_an_attempts_outcome_or_said_not_to_be_one() -> None:
    """A new error class must be placed: its series exist from the start only if it is listed."""
    classes: list[type[TokenError]] = [TokenError]
    for cls in classes:
        classes.extend(cls.__subclasses__())
    never_an_attempts_end = {TokenError, ShuttingDown, AccountsDisabled, Overloaded, CallerLeft}
    assert set(classes) - never_an_attempts_end == set(ATTEMPT_FAILURES)
