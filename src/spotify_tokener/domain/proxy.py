"""Where calls to Spotify go: the proxies they may leave through, and where a host is really reached.

Both are parsed here once from the operator's text (``TOKENER_PROXY``, ``TOKENER_CONNECT_TO``). A proxy's
credentials live only in :class:`Proxy`; whatever a person sees (logs, errors, status, metrics) uses its
``label``, which has none.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

PROXY_SCHEMES = ("http", "https", "socks5")
DEFAULT_PORTS = {"http": 80, "https": 443}
SOCKS5_FIELD = 255
CREDENTIAL_STATUSES = (401, 407)
LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
HOSTNAME = re.compile(rf"(?=.{{1,253}}$){LABEL}(\.{LABEL})*")
"""A DNS name as it goes on the wire (lower case, ASCII letters, digits, hyphens), without the final dot."""
UNREADABLE = (
    "a proxy URL cannot be read as scheme://user:password@host:port "
    "(percent-encode any / ? # @ : in the user or password)"
)


@dataclass(frozen=True, slots=True)
class Proxy:
    scheme: str
    host: str
    port: int
    username: str = field(default="", repr=False)
    password: str = field(default="", repr=False)

    @property
    def label(self) -> str:
        """``scheme://host:port``: how the proxy is named wherever a person can read it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


ConnectTo = dict[Endpoint, Endpoint]
"""Where each overridden host:port is really reached (curl's ``--connect-to``)."""


def credentials_refused(how: str) -> str:
    """A proxy's refusal of its credentials, as read after its label: the operator's to fix."""
    return f"refused its credentials ({how}: a wrong or missing user or password)"


def tunnel_refused(status: int) -> str:
    """Why a proxy refused a tunnel, as read after its label; 407 is the standard's answer to wrong
    credentials, 401 tinyproxy's."""
    if status in CREDENTIAL_STATUSES:
        return credentials_refused(f"HTTP {status}")
    return f"refused the connection (HTTP {status}: its rules, or the host unreachable from it)"


def parse_proxies(text: str) -> tuple[Proxy, ...]:
    """Comma-separated proxy URLs, in the order they are preferred; empty means none."""
    proxies = tuple(parse_proxy(part.strip()) for part in text.split(",") if part.strip())
    if len({proxy.label for proxy in proxies}) != len(proxies):
        raise ValueError("lists the same proxy twice")
    return proxies


def parse_proxy(url: str) -> Proxy:
    """One proxy URL. Error messages quote the scheme and host at most, never the credentials."""
    try:
        parts = urlsplit(url)
    except ValueError:  # the netloc itself cannot be read: quoting any of it could quote a password
        raise ValueError(UNREADABLE) from None
    scheme = parts.scheme.lower()
    if scheme not in PROXY_SCHEMES:
        shown = f"{scheme}://" if "://" in url else "a proxy without a scheme"
        raise ValueError(f"{shown} is not supported; a proxy starts with http://, https:// or socks5://")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(UNREADABLE)  # also what an unencoded / ? # in a password looks like
    where = f"the proxy {scheme}://{parts.hostname or ''}"
    if not parts.hostname:
        raise ValueError(f"{where} has no host")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{where} has a port that is not a number from 1 to 65535") from None
    if not is_host(parts.hostname):
        raise ValueError(f"{where} has a host that is neither a DNS name nor an IP address")
    if port == 0:
        raise ValueError(f"{where} has port 0, which is not one")
    if port is None and scheme not in DEFAULT_PORTS:
        raise ValueError(f"{where} has no port (socks5:// has no default)")
    if (parts.username is None) != (parts.password is None):
        raise ValueError(f"{where} has a user but no password (user:password@host)")
    username, password = unquote(parts.username or ""), unquote(parts.password or "")
    _check_credentials(scheme, username, password, where)
    return Proxy(scheme, parts.hostname, port or DEFAULT_PORTS[scheme], username, password)


def is_host(text: str) -> bool:
    """A DNS name or an IP address: nothing that could smuggle anything into a request line."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return bool(HOSTNAME.fullmatch(text.lower().rstrip(".")))
    return True


def _check_credentials(scheme: str, username: str, password: str, where: str) -> None:
    """What the proxy's protocol can carry: HTTP's basic auth, ``user:password`` in Latin-1;
    SOCKS5's, at most 255 bytes each."""
    if scheme == "socks5":
        if len(username.encode()) > SOCKS5_FIELD or len(password.encode()) > SOCKS5_FIELD:
            raise ValueError(f"{where} has a user or password longer than SOCKS5 allows (255 bytes)")
        return
    if ":" in username:
        raise ValueError(f"{where} has a ':' in its user name, which HTTP proxy authentication cannot carry")
    try:
        f"{username}:{password}".encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(f"{where} has a user or password HTTP authentication cannot carry") from None


def parse_connect_to(text: str) -> ConnectTo:
    """Comma-separated ``HOST:PORT:TARGET_HOST:TARGET_PORT`` entries; empty means none."""
    rules: ConnectTo = {}
    for entry in [part.strip() for part in text.split(",") if part.strip()]:
        fields = entry.split(":")
        if len(fields) != 4 or not fields[0] or not fields[2]:
            raise ValueError(f"entry {entry!r} is not HOST:PORT:TARGET_HOST:TARGET_PORT")
        source = Endpoint(fields[0].lower(), _port(fields[1], entry))
        rules[source] = Endpoint(fields[2], _port(fields[3], entry))
    return rules


def _port(text: str, entry: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"entry {entry!r} has a port that is not a number from 1 to 65535")
    return int(text)
