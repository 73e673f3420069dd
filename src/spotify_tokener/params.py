"""Parsing of the few request parameters the API accepts. Pure, so every rule is unit-tested."""

from __future__ import annotations

from urllib.parse import parse_qsl

TRUE_WORDS = frozenset({"1", "true", "yes"})
FALSE_WORDS = frozenset({"", "0", "false", "no"})
MAX_QUERY_LENGTH = 2048


class InvalidParameter(ValueError):
    """A parameter is wrong; ``str(self)`` says what, for the ``details`` of a 400."""


def parse_force(query_string: str) -> bool:
    """Read ``force`` from a raw query string: yes/true/1 force, no/false/0/empty do not."""
    if len(query_string) > MAX_QUERY_LENGTH:
        raise InvalidParameter(f"query string is longer than {MAX_QUERY_LENGTH} characters")
    try:
        pairs = parse_qsl(query_string, keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise InvalidParameter("query string is not valid UTF-8 percent-encoding") from None
    values = [value for name, value in pairs if name == "force"]
    if not values:
        return False
    if len(values) > 1:
        raise InvalidParameter("'force' must be given at most once")
    word = values[0].strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise InvalidParameter("'force' must be one of 1, true, yes, 0, false, no (any case) or empty")
