from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal, get_args, get_origin

import msgspec
import pytest

from spotify_tokener.cli import describe, load_settings, parse_args
from spotify_tokener.settings import (
    FIELDS,
    Hidden,
    InvalidSettings,
    Settings,
    default_state_dir,
    deprecated_names,
    forget_environment,
    requested_log_format,
    stray_variables,
)


def test_defaults_match_the_documentation() -> None:
    settings = Settings.from_environment()
    assert (settings.host, settings.port) == ("127.0.0.1", 3000)
    assert settings.spotify_url == "https://open.spotify.com/"
    assert (settings.fetch_timeout, settings.browser_idle) == (20, 60)
    assert (settings.expiry_buffer, settings.refresh_window, settings.refresh_interval) == (300, 600, 300)
    assert (settings.retries, settings.retry_base_delay) == (3, 1)


def test_every_setting_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "4000")
    monkeypatch.setenv("HOST", "127.0.0.1")
    monkeypatch.setenv("TOKENER_FETCH_TIMEOUT", "7.5")
    monkeypatch.setenv("TOKENER_BROWSER_ARGS", "--foo '--bar baz'")
    settings = Settings.from_environment()
    assert (settings.host, settings.port, settings.fetch_timeout) == ("127.0.0.1", 4000, 7.5)
    assert settings.browser_args == "--foo '--bar baz'"


def test_prefixed_names_win_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKENER_PORT", "4100")
    assert Settings.from_environment().port == 4100


def test_flags_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "4000")
    assert load_settings(parse_args(["--port", "4200", "--host", "::1"])).port == 4200


def test_windows_must_be_ordered() -> None:
    with pytest.raises(InvalidSettings, match="REFRESH_WINDOW"):
        Settings.build(expiry_buffer=600, refresh_window=300)


def test_bad_settings_are_described_by_variable_without_their_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKENER_FETCH_TIMEOUT", "-3")
    monkeypatch.setenv("PORT", "99999")
    with pytest.raises(InvalidSettings) as caught:
        Settings.from_environment()
    text = describe(caught.value)
    assert "TOKENER_FETCH_TIMEOUT" in text
    assert "PORT" in text
    assert "99999" not in text


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        (None, None, "text"),
        ("TOKENER_LOG_FORMAT", "json", "json"),
        ("tokener_log_format", "json", "json"),  # names are read regardless of case, as Settings reads them
        ("TOKENER_LOG_FORMAT", "JSON", "text"),  # values are not: Settings refuses this one
        ("TOKENER_LOG_FORMAT", "yaml", "text"),
    ],
)
def test_the_log_format_is_read_alone_as_settings_read_it(
    monkeypatch: pytest.MonkeyPatch, variable: str | None, value: str | None, expected: str
) -> None:
    """Invalid settings are reported in this format, before there is a Settings to ask."""
    monkeypatch.setenv("TOKENER_FETCH_TIMEOUT", "soon")
    if variable and value:
        monkeypatch.setenv(variable, value)
    assert requested_log_format() == expected


def test_an_empty_browser_path_means_find_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKENER_BROWSER_PATH", "")
    assert Settings.from_environment().browser_path is None


def test_a_rule_across_settings_is_described_without_a_made_up_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TOKENER_EXPIRY_BUFFER", "900")
    with pytest.raises(InvalidSettings) as caught:
        Settings.from_environment()
    text = describe(caught.value)
    assert text.startswith("invalid settings: TOKENER_REFRESH_WINDOW must be at least TOKENER_EXPIRY_BUFFER")
    assert "TOKENER_SETTINGS" not in text


def documented(default: object) -> str:
    """A default as the configuration table writes it: ``10.0`` as 10, ``True`` as true, nothing as unset."""
    value = default.get_secret_value() if isinstance(default, Hidden) else default
    if value is None or value == "":
        return "*(unset)*"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value:g}`" if isinstance(value, float) else f"`{value}`"


def limits_of(kind: object) -> list[object]:
    """The bounds of an ``Annotated`` type, optional or not."""
    metas = [meta for part in (kind, *get_args(kind)) for meta in getattr(part, "__metadata__", ())]
    keys = ("ge", "gt", "le", "lt")
    return [getattr(meta, key) for meta in metas for key in keys if getattr(meta, key) is not None]


def test_every_setting_is_in_the_configuration_table_with_its_default_and_bounds() -> None:
    """The table is the settings' only documentation: a setting added, or a default or a bound changed,
    in settings.py must be written there too."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    rows = {row[2:].split("`")[1]: row.split(" | ") for row in text.splitlines() if row.startswith("| `")}
    for name, field in FIELDS.items():
        variable = {"host": "HOST", "port": "PORT"}.get(name, f"TOKENER_{name.upper()}")
        assert variable in rows, variable
        _, default, bounds, _ = rows[variable]
        if field.default_factory is msgspec.NODEFAULT:
            assert default.replace("*(empty)*", "*(unset)*") == documented(field.default), variable
        own = [] if "≥ `TOKENER_" in bounds else limits_of(field.type)  # another setting's is stronger
        words = [*own, *(get_args(field.type) if get_origin(field.type) is Literal else ())]
        missing = [word for word in words if not re.search(rf"(?<![\w.]){word}(?![\w.])", bounds)]
        assert missing == [], variable


def test_api_keys_are_split_and_kept_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKENER_API_KEY", " key-one , key-two,, ")
    settings = Settings.from_environment()
    assert settings.api_keys == ("key-one", "key-two")
    assert "key-one" not in repr(settings)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("localhost:6379", "must start with redis://"),
        ("redis://:s3cret@cache:notaport/0", "port that is not a number"),
    ],
)
def test_a_bad_redis_url_is_one_line_without_the_password(url: str, message: str) -> None:
    with pytest.raises(InvalidSettings) as raised:
        Settings.build(redis_url=url)
    described = describe(raised.value)
    assert described.startswith("invalid setting TOKENER_REDIS_URL:")
    assert message in described
    assert "s3cret" not in described


def test_a_bad_proxy_is_one_line_without_the_password() -> None:
    with pytest.raises(InvalidSettings) as raised:
        Settings.build(proxy="http://alice:s3cret@proxy.example:3128,socks5://bob:s3cret@proxy.example")
    described = describe(raised.value)
    assert described.startswith("invalid setting TOKENER_PROXY: the proxy socks5://proxy.example has no port")
    assert "s3cret" not in repr(Settings.build(proxy="http://alice:s3cret@proxy.example:3128"))


@pytest.mark.parametrize(
    "url", ["", "redis://localhost:6379/0", "rediss://:pw@cache:6380", "unix:///run/redis.sock"]
)
def test_good_redis_urls_pass(url: str) -> None:
    assert Settings.build(redis_url=url).redis_url.get_secret_value() == url


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("host", "999.1.1.1", "must be an IP address"),
        ("host", "localhost", "must be an IP address"),
        ("spotify_url", "notaurl", "must be an http(s) URL"),
        ("spotify_url", "http://open.spotify.com/", "must start with https://"),
        ("spotify_url", "http://mirror.example:8080/", "must start with https://"),
        ("browser_args", '"--unclosed', "cannot be split like a shell line"),
        ("api_key", " , ,", "holds no key"),
        ("ca_file", "/nonexistent/extra.pem", "/nonexistent/extra.pem does not exist"),
        ("ca_file", "/etc/hostname", "holds no PEM certificate"),
        ("connect_to", "open.spotify.com:443:127.0.0.1", "is not HOST:PORT:TARGET_HOST:TARGET_PORT"),
    ],
)
def test_values_that_would_fail_later_are_refused_at_start(field: str, value: str, message: str) -> None:
    with pytest.raises(InvalidSettings) as raised:
        Settings.build(**{field: value})
    assert message in describe(raised.value)


@pytest.mark.parametrize("written", ["debug", "Debug", "DEBUG"])
def test_the_log_level_is_read_in_any_case(written: str) -> None:
    assert Settings.build(log_level=written).log_level == "DEBUG"


@pytest.mark.parametrize(
    ("host", "beyond"),
    [("127.0.0.1", False), ("::1", False), ("0.0.0.0", True), ("::", True), ("10.0.0.5", True)],
)
def test_beyond_loopback(host: str, beyond: bool) -> None:
    assert Settings.build(host=host).beyond_loopback is beyond


@pytest.mark.parametrize("sources", ["", "direct,direct", "browser,chrome", " , "])
def test_sources_are_known_words_each_at_most_once(sources: str) -> None:
    with pytest.raises(InvalidSettings, match="must list each of direct, embed, browser"):
        Settings.build(sources=sources)


def test_sources_keep_their_order_and_each_adds_its_time_to_an_attempt() -> None:
    both = Settings.build(sources=" Browser , direct", queue_timeout=1, direct_timeout=2, fetch_timeout=4)
    assert both.source_names == ("browser", "direct")
    assert both.source_timeouts == {"browser": 4, "direct": 2}
    assert both.attempt_budget == 7
    assert Settings.build(sources="direct", queue_timeout=1, direct_timeout=2).attempt_budget == 3
    every = Settings.build(queue_timeout=1, direct_timeout=2, embed_timeout=3, fetch_timeout=4)
    assert every.source_names == ("direct", "embed", "browser")  # the default order
    assert every.attempt_budget == 10


@pytest.mark.parametrize(
    "entity",
    ["track/11dFghVXANMlKmJXsNCb", "user/11dFghVXANMlKmJXsNCbNl", "track:11dFghVXANMlKmJXsNCbNl", ""],
)
def test_the_embed_entity_is_a_known_type_and_a_spotify_id(entity: str) -> None:
    with pytest.raises(InvalidSettings, match="TYPE/ID"):
        Settings.build(embed_entity=entity)
    assert Settings.build(embed_entity="playlist/37i9dQZF1DXcBWIGoYBM5M").embed_entity.startswith("playlist/")


def test_per_identity_memory_holds_every_account_and_the_anonymous_token() -> None:
    assert Settings.build(max_accounts=7).remembered_identities == 8


def test_a_pinned_secret_needs_its_version_and_is_kept_secret() -> None:
    with pytest.raises(InvalidSettings, match="set together"):
        Settings.build(totp_secret="pinned-secret-value")
    with pytest.raises(InvalidSettings, match="set together"):
        Settings.build(totp_version=61)
    settings = Settings.build(totp_secret="pinned-secret-value", totp_version=61)
    assert settings.pinned_secret is not None
    assert settings.pinned_secret.version == 61
    assert "pinned-secret-value" not in repr(settings)


def test_the_settings_leave_the_environment_once_read_whatever_their_case(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TOKENER_API_KEY", "upper-case-key")
    monkeypatch.setenv("tokener_proxy", "http://user:s3cret@proxy.example:8080")
    monkeypatch.setenv("PORT", "4000")
    settings = Settings.from_environment()
    forget_environment()
    assert settings.api_keys == ("upper-case-key",)
    assert settings.proxies[0].password == "s3cret"
    assert not [name for name in os.environ if name.upper().startswith("TOKENER_")]
    assert os.environ["PORT"] == "4000"  # not the service's own: the bare name others use too


def test_an_old_name_is_still_read_with_one_warning_naming_the_new_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert deprecated_names() is None
    monkeypatch.setenv("TOKENER_PROXY_BENCH", "12")
    monkeypatch.setenv("tokener_proxy_fallback_direct", "true")
    monkeypatch.setenv("TOKENER_SOURCE_BENCH", "99")
    monkeypatch.setenv("TOKENER_SOURCE_COOLDOWN", "7")  # the new name wins
    settings = Settings.from_environment()
    assert (settings.proxy_cooldown, settings.proxy_optional, settings.source_cooldown) == (12, True, 7)
    warning = deprecated_names()
    assert warning is not None
    assert "TOKENER_PROXY_BENCH (now TOKENER_PROXY_COOLDOWN)" in warning
    assert "TOKENER_PROXY_FALLBACK_DIRECT (now TOKENER_PROXY_OPTIONAL)" in warning


@pytest.mark.parametrize(
    ("environ", "folder"),
    [
        ({"XDG_STATE_HOME": "/var/state", "HOME": "/home/bot"}, "/var/state/spotify-tokener"),
        ({"XDG_STATE_HOME": "relative", "HOME": "/home/bot"}, "/home/bot/.local/state/spotify-tokener"),
        ({"HOME": "/home/bot"}, "/home/bot/.local/state/spotify-tokener"),
        ({}, None),
    ],
)
def test_the_state_folder_is_the_users_own_by_default(environ: dict[str, str], folder: str | None) -> None:
    found = default_state_dir(environ)
    assert (str(found) if found else None) == folder


def test_an_empty_state_dir_keeps_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOKENER_STATE_DIR")
    monkeypatch.setenv("XDG_STATE_HOME", "/var/state")
    assert Settings.from_environment().state_dir == Path("/var/state/spotify-tokener")
    monkeypatch.setenv("TOKENER_STATE_DIR", "")
    assert Settings.from_environment().state_dir is None
    monkeypatch.setenv("TOKENER_STATE_DIR", "/data")
    assert Settings.from_environment().state_dir == Path("/data")


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/", "http://localhost/", "http://[::1]:3001/"])
def test_a_plain_http_page_is_allowed_on_this_machine_only(url: str) -> None:
    assert Settings.build(spotify_url=url).spotify_url == url


def test_a_mistyped_setting_is_named_with_the_closest_one_and_never_its_value() -> None:
    environ = {
        "TOKENER_SORCES": "direct-secret-value",
        "tokener_proxy_conect_timeout": "2",
        "TOKENER_ZZZZZZZZ": "x",
        "TOKENER_SOURCES": "direct",
        "TOKENER_HOST": "127.0.0.1",
        "PATH": "/usr/bin",
    }
    assert stray_variables(environ) == [
        "TOKENER_SORCES is not a setting and is ignored; did you mean TOKENER_SOURCES?",
        "TOKENER_ZZZZZZZZ is not a setting and is ignored",
        "tokener_proxy_conect_timeout is not a setting and is ignored; "
        "did you mean TOKENER_PROXY_CONNECT_TIMEOUT?",
    ]


@pytest.mark.parametrize(
    ("written", "value"),
    [("true", True), ("1", True), ("Yes", True), ("y", True), ("off", False), ("F", False)],
)
def test_a_switch_takes_the_words_it_always_took(written: str, value: bool) -> None:
    assert Settings.build(allow_accounts=written).allow_accounts is value
