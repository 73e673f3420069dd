"""HTTPS to Spotify without a browser, with a browser's TLS and HTTP/2 fingerprint (curl_cffi), for
every source that needs none (direct, embed).

Python's own TLS handshake tells a firewall at once that no browser is calling; curl_cffi's
impersonation presents Chrome's. Cookies are the caller's alone: the session keeps no jar, so no
identity's cookie ever rides along with another's call. ``TOKENER_CONNECT_TO`` and
``TOKENER_CA_FILE`` apply here as they do to Chromium.
"""

from __future__ import annotations

import re
import ssl
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curl_cffi import CurlECode, CurlOpt
from curl_cffi._wrapper import ffi, lib  # CONNECT_TO needs a curl list, which the session cannot build
from curl_cffi.curl import CURL_WRITEFUNC_ERROR, CurlError
from curl_cffi.requests import AsyncSession
from curl_cffi.requests.exceptions import Timeout
from curl_cffi.requests.impersonate import resolve_latest_browser_type
from curl_cffi.utils import CurlCffiWarning

from spotify_tokener.domain.errors import FetchTimeout, PageUnreachable, UpstreamError
from spotify_tokener.domain.proxy import Proxy, credentials_refused, tunnel_refused
from spotify_tokener.settings import Settings
from spotify_tokener.sources.trust import sweep_dead, temp_prefix
from spotify_tokener.sources.user_agent import agent_for

warnings.filterwarnings("ignore", category=CurlCffiWarning)  # its advice on https proxies, each call
IMPERSONATE: str = resolve_latest_browser_type("chrome")  # type: ignore[no-untyped-call]
"""curl_cffi's newest Chrome fingerprint (such as ``chrome152``): the user agent names the same version."""
TUNNEL_REFUSED = re.compile(r"CONNECT tunnel failed, response (\d{3})")  # curl's words, not the proxy's
SOCKS_REFUSED = "rejected by the SOCKS5 server"
TRUST_PREFIX = "spotify-tokener-trust-"
ANSWER_MAX = 2 << 20
"""The most a body may hold unless the call says otherwise (the page, the server's time, a token)."""


@dataclass(slots=True)
class Budget:
    """Bytes that several calls (one learning's scripts) may still read between them."""

    left: int


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    cookies: Mapping[str, str]  # what the answer set, for the caller to keep or not


class Client:
    """One connection pool to Spotify for every identity; each call names its cookies and proxy."""

    def __init__(self, settings: Settings, timeout_s: float) -> None:
        # The operator's user agent, or the impersonated Chrome's: headers agree with the TLS handshake.
        self.user_agent = agent_for(settings.user_agent, self.chrome_version)
        self._timeout_s = timeout_s
        # Through a proxy, curl's (connect, rest) pair of the same sum: a proxy that never answers
        # leaves the rest of the attempt to the next one.
        connect_s = min(settings.proxy_connect_timeout, timeout_s)
        self._proxy_timeouts = (connect_s, timeout_s - connect_s)
        self._connect_to = ffi.NULL
        for a, b in settings.connect_to_rules.items():
            entry = f"{a.host}:{a.port}:{b.host}:{b.port}".encode()
            self._connect_to = lib.curl_slist_append(self._connect_to, entry)
        sweep_dead(TRUST_PREFIX)  # bundles of processes killed before their close
        self._bundle = _trust_bundle(settings.ca_file) if settings.ca_file is not None else None
        self._session: AsyncSession[Any] | None = None

    @property
    def chrome_version(self) -> str:
        return IMPERSONATE.removeprefix("chrome")

    async def get(
        self,
        url: str,
        *,
        cookies: Mapping[str, str],
        headers: Mapping[str, str],
        proxy: Proxy | None = None,
        limit: int = ANSWER_MAX,
        budget: Budget | None = None,
        post: bytes | None = None,
    ) -> Reply:
        """A transport failure is :class:`PageUnreachable` (never quoting curl's message, which can
        name a proxy's address or a URL with codes in it). A body past ``limit`` bytes, or past what
        ``budget`` has left, is an :class:`UpstreamError`: its transfer is aborted there, so memory
        stays bounded whatever the other end sends."""
        budget = budget or Budget(limit)
        limit = min(limit, budget.left)
        body = bytearray()

        def take(chunk: bytes) -> int:  # curl's write callback, on the event loop's thread
            body.extend(chunk)
            budget.left -= len(chunk)
            return CURL_WRITEFUNC_ERROR if len(body) > limit else len(chunk)

        try:
            response = await self._session_now().request(
                "GET" if post is None else "POST",
                url,
                data=post,
                cookies=dict(cookies),
                headers=dict(headers),
                proxy=proxy.label.replace("socks5:", "socks5h:", 1) if proxy else None,  # the proxy resolves
                proxy_auth=(proxy.username, proxy.password) if proxy and proxy.username else None,
                timeout=self._timeout_s if proxy is None else self._proxy_timeouts,
                allow_redirects=False,
                content_callback=take,
            )
        except Timeout as error:
            sent = error.response is not None and error.response.request_size > 0
            if proxy is not None and not sent:  # still connecting, to the proxy or through it
                raise PageUnreachable(f"the proxy {proxy.label} did not answer in time") from None
            raise FetchTimeout.after(self._timeout_s) from None
        except CurlError as error:
            if len(body) > limit:
                raise UpstreamError(f"Spotify's answer is longer than {limit} bytes") from None
            if proxy is not None and (refused := _proxy_refusal(str(error))) is not None:
                raise PageUnreachable(f"the proxy {proxy.label} {refused}") from None
            where = f" through {proxy.label}" if proxy is not None else ""
            cause = _curl_cause(error.code)
            raise PageUnreachable(f"Spotify could not be reached{where} ({cause})") from None
        return Reply(
            response.status_code,
            {name.lower(): value for name, value in response.headers.items() if value is not None},
            bytes(body),
            {name: value for name, value in response.cookies.items() if value is not None},
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._bundle is not None:
            self._bundle.unlink(missing_ok=True)
        lib.curl_slist_free_all(self._connect_to)  # NULL: nothing to free
        self._connect_to = ffi.NULL

    def _session_now(self) -> AsyncSession[Any]:
        """Made on first use, inside the running loop that will drive it."""
        if self._session is None:
            options: dict[CurlOpt, Any] = {CurlOpt.CONNECT_TO: self._connect_to}
            if self._bundle is not None:
                options[CurlOpt.CAINFO] = options[CurlOpt.PROXY_CAINFO] = str(self._bundle)
            self._session = AsyncSession(
                impersonate=IMPERSONATE,
                discard_cookies=True,
                trust_env=False,
                curl_options=options,
            )
        return self._session


def _trust_bundle(ca_file: Path) -> Path:
    """The system's authorities and the extra ones in one file: curl reads one bundle, not two."""
    system = ssl.get_default_verify_paths().cafile
    parts = [Path(system).read_bytes()] if system and Path(system).is_file() else []
    with tempfile.NamedTemporaryFile(prefix=temp_prefix(TRUST_PREFIX), suffix=".pem", delete=False) as file:
        file.write(b"\n".join([*parts, ca_file.read_bytes()]))
    return Path(file.name)


def _curl_cause(code: int) -> str:
    """curl's name for a failure reads like Chromium's ``net::ERR_...``; the bare number does not."""
    try:
        name = CurlECode(code).name
    except ValueError:
        return f"curl error {code}"
    return f"{name.lower().replace('_', ' ')}, curl error {code}"


def _proxy_refusal(message: str) -> str | None:
    """Why the proxy itself refused, read from curl's message (which is never shown: it can name
    the proxy's address): its credentials above all, else the status of its CONNECT reply."""
    if SOCKS_REFUSED in message:
        return credentials_refused("SOCKS5")
    status = TUNNEL_REFUSED.search(message)
    return tunnel_refused(int(status[1])) if status is not None else None
