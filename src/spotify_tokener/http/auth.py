"""Optional API keys: compared in constant time, never logged, never echoed. LavaSrc can only be
given a URL, so besides ``Authorization: Bearer <key>`` a key is accepted as ``?key=<key>``."""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from urllib.parse import parse_qsl

BEARER = "bearer "


def presented_key(authorization: str | None, query_string: str) -> str | None:
    """The key a request carries: the Bearer credential, else the ``key`` query parameter."""
    if authorization and authorization[: len(BEARER)].lower() == BEARER:
        return authorization[len(BEARER) :].strip() or None
    if "key=" not in query_string:
        return None
    keys = [value for name, value in parse_qsl(query_string, keep_blank_values=True) if name == "key"]
    return keys[0] if len(keys) == 1 and keys[0] else None


class ApiKeys:
    def __init__(self, keys: Iterable[str]) -> None:
        self._keys = tuple(key.encode() for key in keys)
        self.enabled = bool(self._keys)

    def accepts(self, presented: str | None) -> bool:
        """True if ``presented`` is one of the keys; every key is compared, so timing tells nothing."""
        if presented is None:
            return False
        candidate = presented.encode()
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(candidate, key)
        return matched
