"""What a request carries: its few parameters, its sp_dc cookie, its API key. Pure, so every rule is
unit-tested."""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable
from urllib.parse import parse_qsl

from spotify_tokener.domain.token import SP_DC

TRUE_WORDS = frozenset({"1", "true", "yes"})
FALSE_WORDS = frozenset({"", "0", "false", "no"})
MAX_QUERY_LENGTH = 2048
MAX_COOKIE_SIZE = 4096  # name and value together: Chromium refuses a longer cookie (RFC 6265bis)
HTTP_WHITESPACE = " \t"
COOKIE_OCTETS = re.compile(r"[\x21\x23-\x2B\x2D-\x3A\x3C-\x5B\x5D-\x7E]+")  # RFC 6265 cookie-octet
BEARER = "bearer "


class InvalidParameter(ValueError):
    """A parameter is wrong; ``str(self)`` says what, for the ``details`` of a 400."""


def parse_force(query_string: str) -> bool:
    """Read ``force`` from a raw query string: yes/true/1 force, no/false/0/empty do not."""
    value = parse_one(query_string, "force") if query_string else None  # LavaSrc's call skips the parser
    word = (value or "").lower()  # no stripping: ' 1' or '1\n' is not one of the words
    if word in TRUE_WORDS or word in FALSE_WORDS:
        return word in TRUE_WORDS
    raise InvalidParameter("'force' must be one of 1, true, yes, 0, false, no (any case) or empty")


def parse_one(query_string: str, name: str, pattern: re.Pattern[str] | None = None) -> str | None:
    """The parameter ``name``, given at most once and matching ``pattern`` if one is given; None if
    absent. Messages name the parameter, never quote its value."""
    if len(query_string) > MAX_QUERY_LENGTH:
        raise InvalidParameter(f"query string is longer than {MAX_QUERY_LENGTH} characters")
    try:
        pairs = parse_qsl(query_string, keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise InvalidParameter("query string is not valid UTF-8 percent-encoding") from None
    values = [value for key, value in pairs if key == name]
    if len(values) > 1:
        raise InvalidParameter(f"'{name}' must be given at most once")
    if values and pattern is not None and not pattern.fullmatch(values[0]):
        raise InvalidParameter(f"'{name}' must match {pattern.pattern}")
    return values[0] if values else None


def parse_sp_dc(cookie_headers: Iterable[str]) -> str | None:
    """The ``sp_dc`` cookie of the request's Cookie header(s), or None (other cookies are ignored);
    messages say what is wrong with it without ever quoting it."""
    values = []
    for pair in ";".join(cookie_headers).split(";"):
        name, equals, value = pair.strip(HTTP_WHITESPACE).partition("=")
        if name.strip(HTTP_WHITESPACE) != SP_DC:
            continue
        if not equals:
            raise InvalidParameter("the sp_dc cookie has no '=' and no value")
        value = value.strip(HTTP_WHITESPACE)  # only what may surround a cookie value
        values.append(value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value)
    if not values:
        return None
    if len(set(values)) > 1:
        raise InvalidParameter("the sp_dc cookie is given more than once, with different values")
    value = values[0]
    if not value:
        raise InvalidParameter("the sp_dc cookie is empty")
    if len(SP_DC) + len(value) > MAX_COOKIE_SIZE:
        raise InvalidParameter(
            f"the sp_dc cookie is too long: its name and value together may be at most {MAX_COOKIE_SIZE} "
            "characters, the most a browser accepts"
        )
    if not COOKIE_OCTETS.fullmatch(value):
        raise InvalidParameter("the sp_dc cookie contains characters a cookie value may not")
    return value


def presented_key(authorization: str | None, query_string: str) -> str | None:
    """The key a request carries: the Bearer credential, else the ``key`` query parameter (LavaSrc can
    only be given a URL)."""
    if authorization and authorization[: len(BEARER)].lower() == BEARER:
        return authorization[len(BEARER) :].strip() or None
    keys = [value for name, value in parse_qsl(query_string, keep_blank_values=True) if name == "key"]
    return keys[0] if len(keys) == 1 and keys[0] else None


class ApiKeys:
    """Optional API keys: compared in constant time, never logged, never echoed."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._keys = tuple(key.encode() for key in keys)
        self.enabled = bool(self._keys)

    def accepts(self, presented: str | None) -> bool:
        if presented is None:
            return False
        matches = [hmac.compare_digest(presented.encode(), key) for key in self._keys]
        return any(matches)  # every key compared first, so timing tells nothing
