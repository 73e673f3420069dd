from __future__ import annotations

import pytest

from spotify_tokener.domain.errors import RateLimited
from spotify_tokener.sources.direct.reader import parse_page
from spotify_tokener.sources.http_client import Reply


def test_a_refused_page_carries_spotifys_retry_after() -> None:
    """As the browser's and the embed page's refusals do: the cool-down then lasts as long as asked."""
    refused = Reply(429, {"retry-after": "120"}, b"", {})
    with pytest.raises(RateLimited) as raised:
        parse_page(refused, "https://open.spotify.com/")
    assert raised.value.retry_after == 120
