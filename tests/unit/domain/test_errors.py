"""A stored error must not keep alive what it was raised through (issue 24: a failed read's body)."""

from __future__ import annotations

import gc
import weakref

from spotify_tokener.domain.errors import UpstreamError


class Body:
    """Stands for a 10 MB body: a local of the frame the error was raised from."""


def failed_read(body: Body) -> None:
    try:
        raise OSError("curl's error")
    except OSError:
        raise UpstreamError("Spotify's answer is too long") from None


def caught(body: Body) -> UpstreamError:
    try:
        failed_read(body)
    except UpstreamError as error:
        return error
    raise AssertionError("no error")


def test_a_kept_error_holds_no_frame_of_its_raising() -> None:
    body = Body()
    alive = weakref.ref(body)
    error = caught(body).kept()
    del body
    gc.collect()
    assert alive() is None
    assert str(error) == "Spotify's answer is too long"


def test_without_kept_the_frame_holds_the_body() -> None:
    body = Body()
    alive = weakref.ref(body)
    error = caught(body)
    del body
    gc.collect()
    assert alive() is not None and error.__traceback__ is not None
