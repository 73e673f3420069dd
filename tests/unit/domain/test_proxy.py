from __future__ import annotations

import pytest

from spotify_tokener.domain.proxy import Endpoint, Proxy, parse_connect_to, parse_proxies, tunnel_refused

PASSWORD = "pa:ss@wörd"


def test_proxies_keep_their_order_credentials_and_default_ports() -> None:
    proxies = parse_proxies(" http://u:pa%3Ass%40w%C3%B6rd@h1:3128 , https://h2, socks5://[::1]:1080,")
    assert proxies == (
        Proxy("http", "h1", 3128, "u", PASSWORD),
        Proxy("https", "h2", 443),
        Proxy("socks5", "::1", 1080),
    )
    assert [proxy.label for proxy in proxies] == ["http://h1:3128", "https://h2:443", "socks5://[::1]:1080"]


def test_no_text_means_no_proxies() -> None:
    assert parse_proxies("") == ()
    assert parse_proxies(" , ") == ()


def test_credentials_show_nowhere_a_person_reads() -> None:
    proxy = parse_proxies("socks5://user:topsecret@proxy.example:1080")[0]
    for shown in (str(proxy), repr(proxy), proxy.label, f"{proxy}"):
        assert "topsecret" not in shown
        assert "user" not in shown


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ftp://u:topsecret@h:21", "ftp:// is not supported"),
        ("u:topsecret@h:3128", "without a scheme"),
        ("socks5://u:topsecret@h", "no port"),
        ("http://u:topsecret@h:99999", "port that is not a number"),
        ("http://u:topsecret@h:80/path", "cannot be read"),
        ("http://u:top#secret@h:80", "cannot be read"),  # an unencoded # in a password
        ("http://u:top?secret@h:80", "cannot be read"),
        ("http://u:tops\uff20cret@h:80", "cannot be read"),  # a fullwidth @ that normalises to @
        ("http://u%3Ax:topsecret@h:80", "':' in its user name"),
        ("http://u:topsecret\u5bc6@h:80", "HTTP authentication cannot carry"),
        ("socks5://u:topsecret" + "x" * 250 + "@h:1080", "longer than SOCKS5 allows"),
        ("http://u:topsecret@h:0", "port 0"),
        ("http://u:topsecret@ho st:80", "neither a DNS name nor an IP address"),
        ("http://u@h:80", "a user but no password"),
        ("http://:topsecret@:80", "has no host"),
        ("http://h:1,http://u:topsecret@h:1", "the same proxy twice"),
    ],
)
def test_a_malformed_proxy_is_refused_without_quoting_its_password(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        parse_proxies(text)
    assert "topsecret" not in str(caught.value)


def test_connect_to_maps_host_and_port_like_curl() -> None:
    rules = parse_connect_to("Open.Spotify.com:443:127.0.0.1:8443, open.spotifycdn.com:443:localhost:9")
    assert rules == {
        Endpoint("open.spotify.com", 443): Endpoint("127.0.0.1", 8443),
        Endpoint("open.spotifycdn.com", 443): Endpoint("localhost", 9),
    }
    assert parse_connect_to("") == {}


@pytest.mark.parametrize("entry", ["open.spotify.com:443:127.0.0.1", "a:443:b:0", "a:x:b:1", ":443:b:1"])
def test_a_malformed_connect_to_entry_is_named(entry: str) -> None:
    with pytest.raises(ValueError, match="entry"):
        parse_connect_to(entry)


def test_a_refused_tunnel_names_the_credentials_when_its_status_does() -> None:
    assert tunnel_refused(407) == "refused its credentials (HTTP 407: a wrong or missing user or password)"
    assert tunnel_refused(401).startswith("refused its credentials (HTTP 401")  # tinyproxy's 407
    assert "credentials" not in tunnel_refused(403)
