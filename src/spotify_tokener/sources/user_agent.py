"""The user agent every source sends: a desktop Chrome's, so each call's headers agree with its TLS."""

from __future__ import annotations


def agent_for(configured: str, browser_version: str) -> str:
    """The operator's ``TOKENER_USER_AGENT`` where set, else the desktop Chrome of ``browser_version``:
    Chromium's headless default says ``HeadlessChrome``, which Spotify answers differently."""
    major = browser_version.split(".", 1)[0] or "0"
    return configured or (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        f"Chrome/{major}.0.0.0 Safari/537.36"
    )
