"""Every tunable of the service, read from the environment in one place.

Each field is an environment variable named ``TOKENER_<FIELD>`` (``HOST`` and ``PORT`` also
work bare, as in the original project). docs/configuration.md is their documentation (a test checks it
against this class). The rules built from several settings (freshness, backoff) are built here, once.

Checked with msgspec rather than pydantic-settings: the two cost a third of the idle memory
(BENCHMARKS.md) for reading some sixty variables once.
"""

from __future__ import annotations

import ipaddress
import os
import shlex
import ssl
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin
from urllib.parse import urlsplit

import msgspec
from msgspec import Meta, Struct

from spotify_tokener.domain.backoff import Backoff
from spotify_tokener.domain.embed import ENTITY, ENTITY_TYPES
from spotify_tokener.domain.freshness import Freshness
from spotify_tokener.domain.proxy import ConnectTo, Proxy, parse_connect_to, parse_proxies
from spotify_tokener.domain.totp import Secret
from spotify_tokener.logs import LogFormat

Seconds = float
PositiveSeconds = Annotated[Seconds, Meta(gt=0)]
NonNegativeSeconds = Annotated[Seconds, Meta(ge=0)]
PREFIX = "TOKENER_"
BARE = frozenset({"host", "port"})
"""Also read without the prefix, as the original project read them; the prefixed name wins."""
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


class Hidden:
    """A value kept out of reprs, logs and error bodies: a key, a password, a URL that may hold one."""

    __slots__ = ("_value",)

    def __init__(self, value: str = "") -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Hidden('**********')" if self._value else "Hidden('')"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Hidden) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class InvalidSettings(ValueError):
    """Every setting that is wrong, by field ("" for a rule across settings), without its value."""

    def __init__(self, problems: dict[str, str]) -> None:
        super().__init__("; ".join(f"{field}: {problem}" for field, problem in problems.items()))
        self.problems = problems


class Settings(Struct, frozen=True, kw_only=True):
    """Made by :meth:`build` or :meth:`from_environment`, which convert and check each value; the
    constructor itself checks only the rules across settings."""

    host: str = "127.0.0.1"
    port: Annotated[int, Meta(ge=0, le=65535)] = 3000

    backlog: Annotated[int, Meta(ge=128)] = 1024
    header_timeout: Annotated[Seconds, Meta(gt=0, le=60)] = 10.0

    spotify_url: str = "https://open.spotify.com/"
    user_agent: str = ""
    browser_path: Path | None = None
    browser_args: str = ""
    browser_sandbox: Literal["auto", "on", "off"] = "auto"

    fetch_timeout: PositiveSeconds = 20.0
    browser_idle: PositiveSeconds = 60.0
    shutdown_timeout: PositiveSeconds = 5.0

    expiry_buffer: NonNegativeSeconds = 300.0
    refresh_window: NonNegativeSeconds = 600.0
    refresh_interval: PositiveSeconds = 300.0
    stale_margin: NonNegativeSeconds = 30.0

    cooldown_max: PositiveSeconds = 300.0
    force_min_interval: NonNegativeSeconds = 10.0

    retries: Annotated[int, Meta(ge=0, le=10)] = 3
    retry_base_delay: PositiveSeconds = 1.0
    retry_after_max: NonNegativeSeconds = 60.0

    api_key: Hidden = Hidden("")

    allow_accounts: bool = True
    max_accounts: Annotated[int, Meta(ge=1)] = 50
    new_accounts_per_minute: Annotated[int, Meta(ge=1)] = 30
    rejected_cookie_memory: NonNegativeSeconds = 600.0

    max_contexts: Annotated[int, Meta(ge=2, le=64)] = 4
    queue_size: Annotated[int, Meta(ge=0)] = 8
    queue_timeout: PositiveSeconds = 10.0
    retry_jitter: Annotated[float, Meta(ge=0, le=1)] = 0.5

    sources: str = "direct,embed,browser"
    direct_timeout: Annotated[Seconds, Meta(gt=0, le=60)] = 5.0
    direct_unproven_tries: Annotated[int, Meta(ge=0, le=10)] = 2
    totp_secret: Hidden = Hidden("")
    totp_version: Annotated[int, Meta(ge=1)] | None = None
    embed_timeout: Annotated[Seconds, Meta(gt=0, le=60)] = 10.0
    embed_entity: str = "track/11dFghVXANMlKmJXsNCbNl"
    teach_backoff: PositiveSeconds = 21600.0
    source_cooldown: PositiveSeconds = 30.0
    source_cooldown_max: PositiveSeconds = 1800.0

    proxy: Hidden = Hidden("")
    proxy_optional: bool = False
    proxy_connect_timeout: PositiveSeconds = 3.0
    proxy_cooldown: PositiveSeconds = 30.0
    proxy_cooldown_max: PositiveSeconds = 900.0
    ca_file: Path | None = None
    connect_to: str = ""

    hashes_min_interval: NonNegativeSeconds = 60.0
    hashes_max_age: PositiveSeconds = 3600.0

    redis_url: Hidden = Hidden("")
    redis_prefix: str = "spotify-tokener:"
    redis_lock_ttl: PositiveSeconds = 10.0
    redis_timeout: PositiveSeconds = 1.0

    state_dir: Path | None = msgspec.field(default_factory=lambda: default_state_dir(os.environ))

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: LogFormat = "text"

    def __post_init__(self) -> None:
        if self.refresh_window < self.expiry_buffer:
            raise InvalidSettings(
                {
                    "": "TOKENER_REFRESH_WINDOW must be at least TOKENER_EXPIRY_BUFFER, "
                    "or tokens would stop being served before the refresher renews them"
                }
            )
        if self.stale_margin > self.expiry_buffer:
            raise InvalidSettings({"": "TOKENER_STALE_MARGIN must not exceed TOKENER_EXPIRY_BUFFER"})
        if (self.totp_version is None) != (not self.totp_secret.get_secret_value()):
            raise InvalidSettings(
                {"": "TOKENER_TOTP_SECRET and TOKENER_TOTP_VERSION are set together or not at all"}
            )

    @classmethod
    def build(cls, **values: object) -> Settings:
        """Every value converted (``"7.5"`` to seconds, ``""`` to no path) and checked, all problems
        reported at once."""
        converted: dict[str, Any] = {}
        problems: dict[str, str] = {}
        for name, value in values.items():
            try:
                converted[name] = _converted(name, value)
            except ValueError as error:
                problems[name] = str(error)
        if problems:
            raise InvalidSettings(problems)
        return cls(**converted)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ, **overrides: object) -> Settings:
        return cls.build(**{**environment_values(environ), **overrides})

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

    @property
    def beyond_loopback(self) -> bool:
        """Whether clients on other machines can reach the port (the host is validated as an address)."""
        return not ipaddress.ip_address(self.host).is_loopback


FIELDS = {field.name: field for field in msgspec.structs.fields(Settings)}
"""Each setting's name, type (with its bounds), default and default factory."""


def default(name: str) -> object:
    field = FIELDS[name]
    return field.default if field.default_factory is msgspec.NODEFAULT else field.default_factory()


def _converted(name: str, value: object) -> object:
    """``value`` as the setting ``name`` holds it, or ValueError saying why not (never echoing it)."""
    if (field := FIELDS.get(name)) is None:
        raise ValueError("is not a setting")
    if isinstance(value, str) and name in NORMALIZED:
        value = NORMALIZED[name](value)
    try:
        converted = msgspec.convert(value, field.type, strict=False, dec_hook=_decoded)
    except msgspec.ValidationError as error:
        raise ValueError(_plainly(str(error), field.type)) from None
    if name in CHECKS:
        CHECKS[name](converted)
    return converted


def _decoded(kind: type, value: Any) -> object:
    """The types msgspec leaves to us: a path, and a hidden value."""
    if isinstance(value, kind):
        return value
    if kind in (Path, Hidden) and isinstance(value, str):
        return kind(value)
    raise NotImplementedError


def _plainly(message: str, kind: object) -> str:
    """msgspec's message without its JSON path, and a choice's allowed values rather than the value."""
    choices = get_args(kind) if get_origin(kind) is Literal else ()
    return f"must be one of {', '.join(choices)}" if choices else message.partition(" - at ")[0]


def _no_path_when_empty(value: str) -> str | None:
    """``TOKENER_BROWSER_PATH=`` (empty) means "find one", ``TOKENER_STATE_DIR=`` "keep nothing";
    neither the current directory."""
    return value if value.strip() else None


def _yes_or_no(value: str) -> str:
    """The other words pydantic-settings took for a boolean, still taken."""
    word = value.strip().lower()
    return (
        "true" if word in {"yes", "y", "t", "on"} else "false" if word in {"no", "n", "f", "off"} else value
    )


def _ca_file_holds_certificates(value: Path | None) -> None:
    """Caught at start, by both readers of the file (Python's TLS, and the one that fills Chromium's
    trust store): a typo would otherwise surface as TLS failures on every fetch."""
    if value is None:
        return
    try:
        ssl.create_default_context().load_verify_locations(cafile=value)
        standard = PEM_CERTIFICATE in value.read_bytes()  # the only form Chromium's reader takes
    except FileNotFoundError:
        raise ValueError(f"{value} does not exist") from None
    except (ssl.SSLError, OSError):
        standard = False
    if not standard:
        raise ValueError(f"{value} holds no PEM certificate that can be read ({PEM_CERTIFICATE.decode()})")


def _host_is_an_address(value: str) -> None:
    """Granian binds IP addresses only; a name would fail later with a traceback."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError("must be an IP address, such as 0.0.0.0, 127.0.0.1 or ::") from None


def _spotify_url_is_a_web_address(value: str) -> None:
    """Plain http only to this machine (a test double): anywhere else it would carry the ``sp_dc``
    cookies and the tokens in clear text."""
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError("must be an http(s) URL, such as https://open.spotify.com/")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ValueError("must start with https:// (http:// would send cookies and tokens in clear text)")


def _browser_args_split(value: str) -> None:
    try:
        shlex.split(value)
    except ValueError as error:
        raise ValueError(f"cannot be split like a shell line ({error})") from None


def _api_key_is_not_blank(value: Hidden) -> None:
    """A value made only of commas and spaces would silently leave every endpoint open."""
    raw = value.get_secret_value()
    if raw and not any(key.strip() for key in raw.split(",")):
        raise ValueError("is set but holds no key (only commas or spaces)")


def _sources_are_known(value: str) -> None:
    names = [name.strip().lower() for name in value.split(",") if name.strip()]
    unknown = sorted(set(names) - set(SOURCES))
    if unknown or not names or len(set(names)) != len(names):
        raise ValueError(f"must list each of {', '.join(SOURCES)} at most once, at least one (got {value!r})")


def _embed_entity_is_one(value: str) -> None:
    if ENTITY.fullmatch(value) is None:
        raise ValueError(
            f"must be TYPE/ID, TYPE one of {', '.join(ENTITY_TYPES)} and ID 22 letters and digits "
            f"(got {value!r})"
        )


def _redis_url_is_usable(value: Hidden) -> None:
    """Caught at start with a one-line message, not as a traceback at the first fetch."""
    url = value.get_secret_value()
    if not url:
        return
    parts = urlsplit(url)
    if parts.scheme not in REDIS_SCHEMES:
        raise ValueError("must start with redis://, rediss:// or unix://")
    try:
        parts.port  # noqa: B018 - parsing it is the check
    except ValueError:
        raise ValueError("has a port that is not a number") from None


NORMALIZED: dict[str, Callable[[str], str | None]] = {
    "log_level": str.upper,
    "allow_accounts": _yes_or_no,
    "proxy_optional": _yes_or_no,
    "browser_path": _no_path_when_empty,
    "ca_file": _no_path_when_empty,
    "state_dir": _no_path_when_empty,
}
CHECKS: dict[str, Callable[[Any], object]] = {
    "host": _host_is_an_address,
    "spotify_url": _spotify_url_is_a_web_address,
    "browser_args": _browser_args_split,
    "api_key": _api_key_is_not_blank,
    "proxy": lambda value: parse_proxies(value.get_secret_value()),
    "sources": _sources_are_known,
    "embed_entity": _embed_entity_is_one,
    "connect_to": parse_connect_to,
    "redis_url": _redis_url_is_usable,
    "ca_file": _ca_file_holds_certificates,
}


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


def variable(field: str) -> str:
    return PREFIX + field.upper()


def environment_values(environ: Mapping[str, str]) -> dict[str, str]:
    """Each setting's raw value by field: names in any case, the prefixed one first, then the bare
    (``BARE``) or the deprecated one (``RENAMED``)."""
    present = {name.upper(): value for name, value in environ.items()}
    replaced = {new: old for old, new in RENAMED.items()}
    values = {}
    for field in FIELDS:
        names = [variable(field), field.upper() if field in BARE else replaced.get(variable(field), "")]
        if found := [present[name] for name in names if name in present]:
            values[field] = found[0]
    return values


def requested_log_format(environ: Mapping[str, str] = os.environ) -> LogFormat:
    """The format to report invalid settings in, when there is no ``Settings`` to ask: the one requested,
    or text when it is itself one of the invalid settings."""
    value = environment_values(environ).get("log_format")
    return "json" if value == "json" else "text"


def deprecated_names() -> str | None:
    """One warning for the old names set in the environment, naming those that replace them."""
    present = {name.upper() for name in os.environ}
    used = [f"{old} (now {new})" for old, new in RENAMED.items() if old in present]
    return f"deprecated settings, read until the next release: {', '.join(used)}" if used else None


def stray_variables(environ: Mapping[str, str] = os.environ) -> list[str]:
    """A warning for each ``TOKENER_`` variable that names no setting, with the closest setting:
    a typo would otherwise leave the default in force, silently. Names only, never a value."""
    known = [variable(name) for name in FIELDS]
    warnings = []
    for name in sorted(name for name in environ if name.upper().startswith(PREFIX)):
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
    for name in [name for name in os.environ if name.upper().startswith(PREFIX)]:
        del os.environ[name]
