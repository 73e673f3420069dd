"""Serve Spotify web-player access tokens harvested with a headless Chromium."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("spotify-tokener")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
