"""Which of the page's requests matter: the token call is captured, dead weight is blocked.

Pure URL rules, kept apart from the browser code so they are unit-tested directly.
"""

from __future__ import annotations

from urllib.parse import urlsplit

TOKEN_HOST = "open.spotify.com"  # noqa: S105 - a hostname, not a secret
TOKEN_PATHS = frozenset({"/api/token", "/get_access_token"})
BLOCKED_RESOURCE_TYPES = frozenset({"image", "media", "font", "stylesheet", "ping", "manifest"})
BEACON_PATH_SEGMENTS = frozenset({"gabo-receiver-service", "gtm.js", "collect", "beacon"})
BEACON_HOST_PARTS = ("google-analytics", "googletagmanager", "doubleclick", "sentry", "hotjar")


def is_token_request(url: str) -> bool:
    """The web player's own token call, matched by exact host and path, never by substring."""
    parts = urlsplit(url)
    return parts.scheme == "https" and parts.hostname == TOKEN_HOST and parts.path in TOKEN_PATHS


def should_block(resource_type: str, url: str) -> bool:
    """The token does not depend on pixels, fonts, styles and analytics."""
    parts = urlsplit(url)
    return (
        resource_type in BLOCKED_RESOURCE_TYPES
        or any(part in (parts.hostname or "") for part in BEACON_HOST_PARTS)
        or not BEACON_PATH_SEGMENTS.isdisjoint(parts.path.split("/"))
    )
