"""Every tunable of the service, read from the environment in one place.

Each field is an environment variable named ``TOKENER_<FIELD>`` (``HOST`` and ``PORT`` also
work bare, as in the original project). docs/configuration.md mirrors this class (a test checks it).
The rules built from several settings (freshness, backoff) are built here, once.
"""

from __future__ import annotations

import ipaddress
import os
import shlex
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, Self
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from spotify_tokener.domain.backoff import Backoff
from spotify_tokener.domain.embed import ENTITY, ENTITY_TYPES
from spotify_tokener.domain.freshness import Freshness
from spotify_tokener.domain.proxy import ConnectTo, Proxy, parse_connect_to, parse_proxies
from spotify_tokener.domain.totp import Secret
from spotify_tokener.logs import LogFormat

Seconds = float
SOURCES = ("direct", "embed", "browser")
REDIS_SCHEMES = frozenset({"redis", "rediss", "unix"})
PEM_CERTIFICATE = b"-----BEGIN CERTIFICATE-----"
RENAMED = {
    "TOKENER_PROXY_BENCH": "TOKENER_PROXY_COOLDOWN",
    "TOKENER_PROXY_BENCH_MAX": "TOKENER_PROXY_COOLDOWN_MAX",
    "TOKENER_SOURCE_BENCH": "TOKENER_SOURCE_COOLDOWN",
    "TOKENER_SOURCE_BENCH_MAX": "TOKENER_SOURCE_COOLDOWN_MAX",
    "TOKENER_PROXY_FALLBACK_DIRECT": "TOKENER_PROXY_OPTIONAL",
    "TOKENER_DIRECT_UNCONFIRMED_TRIES": "TOKENER_DIRECT_UNPROVEN_TRIES",
}
"""Old names still read, for one release (0.2), with a warning at start (:func:`deprecated_names`)."""


def _renamed(new: str) -> AliasChoices:
    """The new name, and the old one it replaces (the new wins when both are set)."""
    return AliasChoices(new, *(old for old, renamed in RENAMED.items() if renamed == new))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TOKENER_", extra="ignore", frozen=True, validate_by_name=True
    )

    host: str = Field("127.0.0.1", validation_alias=AliasChoices("TOKENER_HOST", "HOST", "host"))
    port: int = Field(3000, ge=0, le=65535, validation_alias=AliasChoices("TOKENER_PORT", "PORT", "port"))

    backlog: int = Field(1024, ge=128, description="Pending and concurrent connections Granian accepts.")
    header_timeout: Seconds = Field(
        10.0, gt=0, le=60, description="A client must send its headers within this."
    )

    spotify_url: str = "https://open.spotify.com/"
    user_agent: str = Field(
        "",
        description="Empty means a desktop Chrome user agent matching the launched browser's version.",
    )
    browser_path: Path | None = None
    browser_args: str = Field("", description="Extra Chromium flags, split like a shell line.")
    browser_sandbox: Literal["auto", "on", "off"] = Field(
        "auto", description="auto: sandboxed unless root, without it (one warning) where it cannot start."
    )

    fetch_timeout: Seconds = Field(20.0, gt=0)
    browser_idle: Seconds = Field(60.0, gt=0)
    shutdown_timeout: Seconds = Field(5.0, gt=0)

    expiry_buffer: Seconds = Field(300.0, ge=0)
    refresh_window: Seconds = Field(600.0, ge=0)
    refresh_interval: Seconds = Field(300.0, gt=0)
    stale_margin: Seconds = Field(30.0, ge=0)

    cooldown_max: Seconds = Field(300.0, gt=0, description="Longest pause after repeated failures.")
    force_min_interval: Seconds = Field(10.0, ge=0, description="Forced fetches closer than this share one.")

    retries: int = Field(3, ge=0, le=10)
    retry_base_delay: Seconds = Field(1.0, gt=0)
    retry_after_max: Seconds = Field(60.0, ge=0)

    api_key: SecretStr = Field(SecretStr(""), description="One key, or several comma-separated.")

    allow_accounts: bool = True
    max_accounts: int = Field(50, ge=1)
    new_accounts_per_minute: int = Field(
        30,
        ge=1,
        description="Accounts not seen before, admitted this many at once, then spread over each minute.",
    )
    rejected_cookie_memory: Seconds = Field(
        600.0, ge=0, description="A cookie Spotify refused is refused again without a fetch for this long."
    )

    max_contexts: int = Field(
        4, ge=2, le=64, description="Browser contexts at once; one is kept for the anonymous token."
    )
    queue_size: int = Field(8, ge=0, description="Account attempts waiting for a context; more are refused.")
    queue_timeout: Seconds = Field(
        10.0, gt=0, description="The longest an account attempt waits for a context."
    )
    retry_jitter: float = Field(
        0.5, ge=0, le=1, description="Each wait between attempts is stretched by up to this fraction."
    )

    sources: str = Field(
        "direct,embed,browser",
        description="Token sources tried in order within each attempt (direct, embed, browser), "
        "comma-separated.",
    )
    direct_timeout: Seconds = Field(
        5.0, gt=0, le=60, description="The most one direct attempt may take before the next source answers."
    )
    direct_unproven_tries: int = Field(
        2,
        ge=0,
        le=10,
        validation_alias=_renamed("TOKENER_DIRECT_UNPROVEN_TRIES"),
        description="Secrets read from the scripts but not proven, tried on Spotify (each once).",
    )
    totp_secret: SecretStr = Field(
        SecretStr(""), description="Pin the TOTP secret the direct source starts with (it still relearns)."
    )
    totp_version: int | None = Field(None, ge=1, description="The pinned secret's version.")
    embed_timeout: Seconds = Field(
        10.0, gt=0, le=60, description="The most one embed attempt (its few page loads) may take."
    )
    embed_entity: str = Field(
        "track/11dFghVXANMlKmJXsNCbNl",
        description="TYPE/ID of the public entity whose embed page is loaded for its token.",
    )
    teach_backoff: Seconds = Field(
        21600.0,
        gt=0,
        description="A background teaching that found nothing is tried again this late, or when the "
        "page's scripts change.",
    )
    source_cooldown: Seconds = Field(
        30.0,
        gt=0,
        validation_alias=_renamed("TOKENER_SOURCE_COOLDOWN"),
        description="A source that fell through cools down this long, doubling while it fails.",
    )
    source_cooldown_max: Seconds = Field(
        1800.0,
        gt=0,
        validation_alias=_renamed("TOKENER_SOURCE_COOLDOWN_MAX"),
        description="The longest a source cools down.",
    )

    proxy: SecretStr = Field(
        SecretStr(""),
        description="Proxies every call to Spotify leaves through (http, https, socks5), comma-separated.",
    )
    proxy_optional: bool = Field(
        False,
        validation_alias=_renamed("TOKENER_PROXY_OPTIONAL"),
        description="With every proxy cooling down, go without one instead of through the first to heal.",
    )
    proxy_connect_timeout: Seconds = Field(
        3.0, gt=0, description="The most reaching Spotify through a proxy may take, before trying the next."
    )
    proxy_cooldown: Seconds = Field(
        30.0,
        gt=0,
        validation_alias=_renamed("TOKENER_PROXY_COOLDOWN"),
        description="A failing proxy cools down this long, doubling while it keeps failing.",
    )
    proxy_cooldown_max: Seconds = Field(
        900.0,
        gt=0,
        validation_alias=_renamed("TOKENER_PROXY_COOLDOWN_MAX"),
        description="The longest a proxy cools down, a Retry-After included.",
    )
    ca_file: Path | None = Field(
        None,
        description="PEM certificates trusted for upstream TLS besides the system's (a mirror, a double).",
    )
    connect_to: str = Field(
        "",
        description="HOST:PORT:TARGET_HOST:TARGET_PORT entries, comma-separated: reach HOST at TARGET "
        "(a mirror, a test double), through the proxies too.",
    )

    hashes_min_interval: Seconds = Field(
        60.0, ge=0, description="The persisted-query hashes are read from the page at most this often."
    )
    hashes_max_age: Seconds = Field(
        3600.0, gt=0, description="Hashes last confirmed this long ago are checked again when asked for."
    )

    redis_url: SecretStr = Field(
        SecretStr(""), description="Empty: tokens in this process only. Set: shared by every replica."
    )
    redis_prefix: str = Field("spotify-tokener:", description="Key prefix, to share one Redis safely.")
    redis_lock_ttl: Seconds = Field(
        10.0, gt=0, description="A dead fetcher's lock is taken over after this; live ones extend it."
    )
    redis_timeout: Seconds = Field(1.0, gt=0, description="The most one Redis command may take.")

    state_dir: Path | None = Field(
        default_factory=lambda: default_state_dir(os.environ),
        description="What was learned, kept across restarts; empty: nothing kept.",
    )

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: LogFormat = Field("text", description="json: one JSON object per line.")

    @property
    def freshness(self) -> Freshness:
        return Freshness.from_seconds(
            self.expiry_buffer, self.refresh_window, self.stale_margin, self.force_min_interval
        )

    @property
    def backoff(self) -> Backoff:
        return Backoff(
            self.retry_base_delay, self.retries, self.retry_after_max, self.cooldown_max, self.retry_jitter
        )

    @property
    def proxy_cooldown_rule(self) -> Backoff:
        return Backoff(self.proxy_cooldown, 0, self.proxy_cooldown_max, self.proxy_cooldown_max)

    @property
    def source_cooldown_rule(self) -> Backoff:
        return Backoff(self.source_cooldown, 0, self.source_cooldown_max, self.source_cooldown_max)

    @property
    def source_names(self) -> tuple[str, ...]:
        return tuple(name.strip().lower() for name in self.sources.split(",") if name.strip())

    @property
    def pinned_secret(self) -> Secret | None:
        value = self.totp_secret.get_secret_value()
        return Secret(value, self.totp_version) if value else None

    @property
    def proxies(self) -> tuple[Proxy, ...]:
        return parse_proxies(self.proxy.get_secret_value())

    @property
    def connect_to_rules(self) -> ConnectTo:
        return parse_connect_to(self.connect_to)

    @property
    def remembered_identities(self) -> int:
        """What per-identity memory (a proxy, a device cookie) keeps: every account slot, and the
        anonymous token."""
        return self.max_accounts + 1

    @property
    def source_timeouts(self) -> dict[str, Seconds]:
        """Each configured source's own share of an attempt, by name."""
        timeouts = {"direct": self.direct_timeout, "embed": self.embed_timeout, "browser": self.fetch_timeout}
        return {name: timeouts[name] for name in self.source_names}

    @property
    def attempt_budget(self) -> Seconds:
        """The longest one attempt can take: its wait for a place, then each source's own time (the
        direct source's, then the embed source's and the browser's after fall-throughs)."""
        return self.queue_timeout + sum(self.source_timeouts.values())

    @property
    def api_keys(self) -> tuple[str, ...]:
        return tuple(key.strip() for key in self.api_key.get_secret_value().split(",") if key.strip())

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level_in_any_case(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @property
    def beyond_loopback(self) -> bool:
        """Whether clients on other machines can reach the port (the host is validated as an address)."""
        return not ipaddress.ip_address(self.host).is_loopback

    @field_validator("browser_path", "ca_file", "state_dir", mode="before")
    @classmethod
    def _empty_path_is_unset(cls, value: object) -> object:
        """``TOKENER_BROWSER_PATH=`` (empty) means "find one", ``TOKENER_STATE_DIR=`` "keep nothing";
        neither the current directory."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("ca_file")
    @classmethod
    def _ca_file_holds_certificates(cls, value: Path | None) -> Path | None:
        """Caught at start, by both readers of the file (Python's TLS, and the one that fills
        Chromium's trust store): a typo would otherwise surface as TLS failures on every fetch."""
        if value is None:
            return value
        try:
            ssl.create_default_context().load_verify_locations(cafile=value)
            standard = PEM_CERTIFICATE in value.read_bytes()  # the only form Chromium's reader takes
        except FileNotFoundError:
            raise ValueError(f"{value} does not exist") from None
        except (ssl.SSLError, OSError):
            standard = False
        if not standard:
            raise ValueError(
                f"{value} holds no PEM certificate that can be read ({PEM_CERTIFICATE.decode()})"
            )
        return value

    @field_validator("host")
    @classmethod
    def _host_is_an_address(cls, value: str) -> str:
        """Granian binds IP addresses only; a name would fail later with a traceback."""
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError("must be an IP address, such as 0.0.0.0, 127.0.0.1 or ::") from None
        return value

    @field_validator("spotify_url")
    @classmethod
    def _spotify_url_is_a_web_address(cls, value: str) -> str:
        """Plain http only to this machine (a test double): anywhere else it would carry the
        ``sp_dc`` cookies and the tokens in clear text."""
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError("must be an http(s) URL, such as https://open.spotify.com/")
        if parts.scheme == "http" and not _is_loopback(parts.hostname):
            raise ValueError("must start with https:// (http:// would send cookies and tokens in clear text)")
        return value

    @field_validator("browser_args")
    @classmethod
    def _browser_args_split(cls, value: str) -> str:
        try:
            shlex.split(value)
        except ValueError as error:
            raise ValueError(f"cannot be split like a shell line ({error})") from None
        return value

    @field_validator("api_key")
    @classmethod
    def _api_key_is_not_blank(cls, value: SecretStr) -> SecretStr:
        """A value made only of commas and spaces would silently leave every endpoint open."""
        raw = value.get_secret_value()
        if raw and not any(key.strip() for key in raw.split(",")):
            raise ValueError("is set but holds no key (only commas or spaces)")
        return value

    @field_validator("proxy")
    @classmethod
    def _proxies_parse(cls, value: SecretStr) -> SecretStr:
        parse_proxies(value.get_secret_value())
        return value

    @field_validator("sources")
    @classmethod
    def _sources_are_known(cls, value: str) -> str:
        names = [name.strip().lower() for name in value.split(",") if name.strip()]
        unknown = sorted(set(names) - set(SOURCES))
        if unknown or not names or len(set(names)) != len(names):
            raise ValueError(
                f"must list each of {', '.join(SOURCES)} at most once, at least one (got {value!r})"
            )
        return value

    @field_validator("embed_entity")
    @classmethod
    def _embed_entity_is_one(cls, value: str) -> str:
        if ENTITY.fullmatch(value) is None:
            raise ValueError(
                f"must be TYPE/ID, TYPE one of {', '.join(ENTITY_TYPES)} and ID 22 letters and digits "
                f"(got {value!r})"
            )
        return value

    @field_validator("connect_to")
    @classmethod
    def _connect_to_parses(cls, value: str) -> str:
        parse_connect_to(value)
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url_is_usable(cls, value: SecretStr) -> SecretStr:
        """Caught at start with a one-line message, not as a traceback at the first fetch."""
        url = value.get_secret_value()
        if not url:
            return value
        parts = urlsplit(url)
        if parts.scheme not in REDIS_SCHEMES:
            raise ValueError("must start with redis://, rediss:// or unix://")
        try:
            parts.port  # noqa: B018 - parsing it is the check
        except ValueError:
            raise ValueError("has a port that is not a number") from None
        return value

    @model_validator(mode="after")
    def _windows_are_ordered(self) -> Self:
        if self.refresh_window < self.expiry_buffer:
            raise ValueError(
                "TOKENER_REFRESH_WINDOW must be at least TOKENER_EXPIRY_BUFFER, "
                "or tokens would stop being served before the refresher renews them"
            )
        if self.stale_margin > self.expiry_buffer:
            raise ValueError("TOKENER_STALE_MARGIN must not exceed TOKENER_EXPIRY_BUFFER")
        if (self.totp_version is None) != (not self.totp_secret.get_secret_value()):
            raise ValueError("TOKENER_TOTP_SECRET and TOKENER_TOTP_VERSION are set together or not at all")
        return self


def default_state_dir(environ: Mapping[str, str]) -> Path | None:
    """The user's state folder (XDG's: a relative value is ignored), or None without a home."""
    home, base = Path(environ.get("HOME", "")), Path(environ.get("XDG_STATE_HOME", ""))
    base = base if base.is_absolute() else home / ".local" / "state"
    return base / "spotify-tokener" if base.is_absolute() else None


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class _LogFormatAlone(BaseSettings):
    """TOKENER_LOG_FORMAT read from the same sources, with the same name rules, as ``Settings`` reads it."""

    model_config = Settings.model_config

    log_format: LogFormat = "text"


def requested_log_format() -> LogFormat:
    """The format to report invalid settings in, when there is no ``Settings`` to ask: the one requested,
    or text when it is itself one of the invalid settings."""
    try:
        return _LogFormatAlone().log_format
    except ValidationError:
        return "text"


def deprecated_names() -> str | None:
    """One warning for the old names set in the environment, naming those that replace them."""
    present = {name.upper() for name in os.environ}
    used = [f"{old} (now {new})" for old, new in RENAMED.items() if old in present]
    return f"deprecated settings, read until the next release: {', '.join(used)}" if used else None


def stray_variables(environ: Mapping[str, str] = os.environ) -> list[str]:
    """A warning for each ``TOKENER_`` variable that names no setting, with the closest setting:
    a typo would otherwise leave the default in force, silently. Names only, never a value."""
    prefix = Settings.model_config["env_prefix"].upper()
    known = [prefix + name.upper() for name in Settings.model_fields]
    warnings = []
    for name in sorted(name for name in environ if name.upper().startswith(prefix)):
        if name.upper() not in known and name.upper() not in RENAMED:
            import difflib  # noqa: PLC0415  # only for a stray variable: nothing else needs it

            closest = difflib.get_close_matches(name.upper(), known, n=1)
            guess = f"; did you mean {closest[0]}?" if closest else ""
            warnings.append(f"{name} is not a setting and is ignored{guess}")
    return warnings


def forget_environment() -> None:
    """Drop the service's variables from this process's environment once ``Settings`` holds them: the
    Playwright driver and Chromium inherit the environment, and a browser has no use for a proxy's
    password, an API key or a pinned secret."""
    prefix = Settings.model_config["env_prefix"].upper()  # names are read regardless of case
    for name in [name for name in os.environ if name.upper().startswith(prefix)]:
        del os.environ[name]
