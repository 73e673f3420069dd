"""What ``status`` shows of the token sources: each one's health, and what the direct source knows."""

from __future__ import annotations

from typing import Protocol

from spotify_tokener.core.chain import SourceChain
from spotify_tokener.http.schemas import DirectFields, SourceFields
from spotify_tokener.http.standing import standing_fields


class LearnerInfo(Protocol):
    """The direct source, as far as ``status`` may see it: never its secret."""

    @property
    def totp_version(self) -> int | None: ...

    @property
    def secret_origin(self) -> str | None: ...

    @property
    def secret_proven(self) -> bool | None: ...

    @property
    def trouble(self) -> str | None: ...


def source_fields(chain: SourceChain | None, now_ms: int) -> list[SourceFields]:
    if chain is None:
        return []
    return [{"source": state.name, **standing_fields(state, now_ms)} for state in chain.states()]


def direct_fields(learner: LearnerInfo | None) -> DirectFields | None:
    if learner is None:
        return None
    return {
        "totpVersion": learner.totp_version,
        "secretOrigin": learner.secret_origin,
        "secretProven": learner.secret_proven,
        "trouble": learner.trouble,
    }
