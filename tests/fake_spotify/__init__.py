"""A local fake of open.spotify.com for the tests and the benchmark."""

from tests.fake_spotify.server import Answer, FakeSpotify

__all__ = ["Answer", "FakeSpotify"]
