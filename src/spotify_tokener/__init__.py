"""Serve Spotify web-player access tokens to LavaSrc and other clients, fetched without a browser
where it can and with a headless Chromium where it must."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("spotify-tokener")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
