"""A local HTTPS stand-in for open.spotify.com, open.spotifycdn.com and the partner API
(api-partner.spotify.com's pathfinder), with switchable faults.

Chromium reaches it through the real URLs (``TOKENER_CONNECT_TO`` maps both hosts here), so the
service under test runs exactly as in production. Tests steer it with :class:`Answer` values and
read its counters; nothing here talks to the internet.
"""

from __future__ import annotations

import json
import os
import secrets
import ssl
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, urlsplit

import trustme

from tests.fake_spotify import assets
from tests.fake_spotify.assets import SecretShape
from tests.fake_spotify.pathfinder import Pathfinder
from tests.fake_spotify.totp import accepts, derive_key

SECRET = "=n:b#OuEfH\\fE])e*K"
SECRET_VERSION = 61
OLDER_SECRETS = (("GU2>:vZ1p@Xc%w0#y!n5", 60), ("k;D7%pN<2QaZ/u!s", 59))
"""Listed after the current one, as the real bundle lists its past versions."""
CLIENT_ID = "d8a5ed958d274c2e8ee717e6a4b0971d"
UPSTREAM_SECRET_MARKER = "UPSTREAM-BODY-MUST-NOT-LEAK"
HANG_LIMIT_S = 60.0
PAGE_COOKIE = "sp_script"
PARTNER_HOST = "api-partner.spotify.com"
HOSTS = ("open.spotify.com", "open.spotifycdn.com", PARTNER_HOST)
PERSISTED_QUERY_NOT_FOUND = {
    "errors": [{"message": "PersistedQueryNotFound", "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"}}]
}
"""A GraphQL server's answer (HTTP 200) to a persisted-query hash it does not hold."""

AnswerKind = Literal[
    "ok",
    "status",
    "rate_limited",
    "hang",
    "slow",
    "malformed",
    "truncated",
    "error_body",
    "expired",
    "short",
    "invalid_totp",
]


@dataclass(frozen=True)
class Answer:
    """What one token request gets. ``life_s`` is the issued token's lifetime."""

    kind: AnswerKind = "ok"
    status: int = 500
    retry_after: str | None = None
    delay_s: float = 0.0
    life_s: float = 3600.0


EmbedPage = Literal["ok", "no_session", "garbled", "huge", "status"]
"""ok: a session token whose life comes from the pool; no_session: the page without one; garbled: a
__NEXT_DATA__ that is not JSON; huge: megabytes before it; status: ``embed_status``, no page."""


@dataclass
class TokenCall:
    at: float
    cookies: dict[str, str]
    user_agent: str
    query: dict[str, list[str]]
    answer: Answer
    peer: str  # the address the call came from: a proxy's own, when one carried it

    @property
    def by_page(self) -> bool:
        """Made by a page's script (a browser), not by a plain HTTP client: the page set a cookie."""
        return self.cookies.get(PAGE_COOKIE) == "ran"


@dataclass
class Issued:
    access_token: str
    anonymous: bool
    account: str | None
    expires_at: float = 0.0  # time.time()


@dataclass
class State:
    default: Answer = field(default_factory=Answer)
    script: list[Answer] = field(default_factory=list)
    page_status: int = 200
    skip_token_call: bool = False
    accounts: dict[str, str] = field(default_factory=dict)
    blocked_peers: dict[str, Answer] = field(default_factory=dict)  # as a firewall answers an address
    hits: Counter[str] = field(default_factory=Counter)
    calls: list[TokenCall] = field(default_factory=list)
    page_loads_at: list[float] = field(default_factory=list)  # time.time() of each web-player page request
    issued: list[Issued] = field(default_factory=list)
    secrets: list[tuple[str, int]] = field(default_factory=lambda: [(SECRET, SECRET_VERSION), *OLDER_SECRETS])
    decoys: list[tuple[str, int]] = field(default_factory=list)  # listed first, never accepted
    secret_shape: SecretShape = "literal"
    required: dict[str, str] = field(default_factory=dict)  # parameters the page sends and calls need
    server_ahead_s: int = 0  # how far the server's clock (its server-time answer) runs ahead
    pathfinder: Pathfinder = field(default_factory=Pathfinder)
    embed_page: EmbedPage = "ok"
    embed_status: int = 500
    embed_lives: list[float] = field(default_factory=list)  # the pool's next tokens' lives, then:
    embed_life_s: float = 3000.0
    partner_refuses: int | None = None  # every token refused with this status, as if revoked
    devices: list[str] = field(default_factory=list)  # the device cookies (sp_t) the page set
    planted: int = 0  # strings the page keeps in its memory

    @property
    def bundle_path(self) -> str:
        return assets.bundle_path(self.secrets[0][1], self.pathfinder.build)


class FakeSpotify:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._release = threading.Event()
        self.state = State()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self.authority = trustme.CA()
        certificate = self.authority.issue_cert(*HOSTS, "127.0.0.1")
        self._httpd.socket = _tls_context(certificate).wrap_socket(self._httpd.socket, server_side=True)
        self.ca_file = _trust_file(self.authority)
        self.port: int = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def connect_to(self) -> str:
        """TOKENER_CONNECT_TO: the real hostnames reached here, directly or through a proxy."""
        return ",".join(f"{host}:443:127.0.0.1:{self.port}" for host in HOSTS)

    def start(self) -> FakeSpotify:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self.ca_file.unlink(missing_ok=True)

    def reset(self) -> None:
        """Back to healthy defaults; releases any request still hanging or slowly answering."""
        self._release.set()
        with self._lock:
            self.state = State()
        self._release = threading.Event()

    def answer_with(self, *answers: Answer, then: Answer | None = None) -> None:
        """Queue answers for the next token requests; ``then`` becomes the default after them."""
        with self._lock:
            self.state.script.extend(answers)
            if then is not None:
                self.state.default = then

    def block_peer(self, address: str, answer: Answer) -> None:
        """Answer every token call from ``address`` with ``answer``, as Spotify's firewall does."""
        with self._lock:
            self.state.blocked_peers[address] = answer

    def token_calls_from(self, address: str) -> int:
        with self._lock:
            return sum(call.peer == address for call in self.state.calls)

    @property
    def key(self) -> bytes:
        return derive_key(self.state.secrets[0][0])

    def rotate(self, secret: str, version: int) -> None:
        """A new build: a new current secret (the old one now refused), a new bundle URL."""
        with self._lock:
            self.state.secrets.insert(0, (secret, version))

    def list_decoys(self, *decoys: tuple[str, int]) -> None:
        """Secrets the bundle lists as newer than the one it uses (a build that lies), never accepted."""
        with self._lock:
            self.state.decoys.extend(decoys)

    def write_secret_as(self, shape: SecretShape) -> None:
        with self._lock:
            self.state.secret_shape = shape

    def run_server_clock_ahead(self, seconds: int) -> None:
        """The server's clock runs ``seconds`` ahead of the page's: a page's call then carries the
        codes of two 30 s steps (its own and the server's time), as one does where the clocks differ."""
        with self._lock:
            self.state.server_ahead_s = seconds

    def require(self, name: str, value: str) -> None:
        """The page starts sending ``name=value`` with its token call, and calls without it fail."""
        with self._lock:
            self.state.required[name] = value

    def deploy(self, app_version: str | None = None) -> None:
        """A new build: every persisted query gets a new hash, the bundle and its chunks new names."""
        with self._lock:
            self.state.pathfinder.deploy(app_version)

    def pad_bundle(self, size: int) -> None:
        """The main bundle grows by ``size`` bytes of junk (a hostile or broken upstream)."""
        with self._lock:
            self.state.pathfinder.padding = size

    def plant_strings(self, count: int) -> None:
        """The page keeps ``count`` distinct strings of a secret's length in its memory (a hostile page)."""
        with self._lock:
            self.state.planted = count

    def embed_pool(self, *lives_s: float, then: float | None = None) -> None:
        """The lives left (seconds) of the next tokens the embed page hands out; ``then`` after them."""
        with self._lock:
            self.state.embed_lives.extend(lives_s)
            if then is not None:
                self.state.embed_life_s = then

    def embed_answers(self, page: EmbedPage, status: int = 500) -> None:
        with self._lock:
            self.state.embed_page, self.state.embed_status = page, status

    def partner_refuse(self, status: int | None) -> None:
        """The partner API refuses every token with ``status`` (None: live tokens it issued pass)."""
        with self._lock:
            self.state.partner_refuses = status

    def retire_hashes(self) -> None:
        """The partner API stops taking the hashes the scripts still name (a deploy not yet served)."""
        with self._lock:
            self.state.pathfinder.retired = True

    def page_token_calls(self) -> int:
        """Token calls a page's script made (a browser), as opposed to a plain HTTP client's."""
        with self._lock:
            return sum(call.by_page for call in self.state.calls)

    def add_account(self, sp_dc: str, name: str) -> None:
        with self._lock:
            self.state.accounts[sp_dc] = name

    @property
    def token_requests(self) -> int:
        return self.state.hits["token"]

    def count(self, what: str) -> int:
        return self.state.hits[what]

    def issued_tokens(self) -> list[str]:
        return [issued.access_token for issued in self.state.issued]

    def _next_answer(self) -> Answer:
        with self._lock:
            return self.state.script.pop(0) if self.state.script else self.state.default

    def _record(self, what: str) -> None:
        with self._lock:
            self.state.hits[what] += 1


def _tls_context(certificate: trustme.LeafCert) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    certificate.configure_cert(context)
    return context


def _trust_file(authority: trustme.CA) -> Path:
    """TOKENER_CA_FILE for the fake: the authority its certificate comes from."""
    handle, name = tempfile.mkstemp(prefix="fake-spotify-", suffix=".pem")
    with os.fdopen(handle, "wb") as file:
        file.write(authority.cert_pem.bytes())
    return Path(name)


def _handler_for(fake: FakeSpotify) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        owner = fake

    return Handler


class _Handler(BaseHTTPRequestHandler):
    owner: FakeSpotify
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out at once, as a real server's do

    def log_message(self, format: str, *args: object) -> None:
        """Silence the per-request stderr lines."""

    def do_POST(self) -> None:
        """Beacons. The body is read, or its bytes would be taken for the next request on the
        connection (which then fails as an unsupported method, 501)."""
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = urlsplit(self.path).path
        if self.headers.get("Host") == PARTNER_HOST and path == "/pathfinder/v2/query":
            self._pathfinder(body)
            return
        self.owner._record("beacon" if path == assets.BEACON_PATH else "post")
        self._send(204, b"", "text/plain")

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        static = self._static(path)
        if static is not None:
            what, body, content_type = static
            self.owner._record(what)
            self._send(200, body, content_type)
        elif path == "/":
            self._page()
        elif path.startswith(assets.EMBED_PATH):
            self._embed(path.removeprefix(assets.EMBED_PATH))
        elif path == "/api/server-time":
            self.owner._record("server_time")
            self._send_json(200, {"serverTime": int(time.time()) + self.owner.state.server_ahead_s})
        elif path == "/api/token":
            self._token()
        elif path == "/get_access_token":
            self.owner._record("legacy")
            self._send(403, b"URL Blocked", "text/plain")
        else:
            self.owner._record("not_found")
            self._send(404, b"not found", "text/plain")

    def _static(self, path: str) -> tuple[str, bytes, str] | None:
        heavy = b"\0" * assets.HEAVY_BYTES
        state = self.owner.state
        if path == state.bundle_path:
            listed = [*state.decoys, *state.secrets]
            bundle = assets.render_bundle(listed, state.secret_shape, state.required, len(state.decoys))
            return "bundle", bundle + state.pathfinder.bundle_section().encode(), "text/javascript"
        if path == assets.CSS_PATH:
            return "css", b"body{font-family:CircularSp}" + b" " * assets.HEAVY_BYTES, "text/css"
        if path == assets.FONT_PATH:
            return "font", heavy, "font/woff2"
        if path in assets.IMAGE_PATHS or path == "/pixel.gif":
            return "image", heavy, "image/jpeg"
        if path == assets.BEACON_PATH:
            return "beacon", b"", "text/plain"
        chunk = state.pathfinder.chunk(path)
        return ("chunk", chunk, "text/javascript") if chunk is not None else None

    def _page(self) -> None:
        state = self.owner.state
        self.owner._record("page")
        with self.owner._lock:
            state.page_loads_at.append(time.time())
        if state.page_status != 200:
            self._send(state.page_status, b"<h1>Service unavailable</h1>", "text/html")
            return
        body = assets.render_page(
            skip_token=state.skip_token_call,
            bundle=state.bundle_path,
            config=state.pathfinder.config_script(),
            planted=state.planted,
        )
        device = secrets.token_hex(16)
        with self.owner._lock:
            state.devices.append(device)
        self._send(200, body, "text/html; charset=utf-8", cookies=[f"sp_t={device}"])

    def _embed(self, entity: str) -> None:
        owner, state = self.owner, self.owner.state
        owner._record("embed")
        if state.embed_page == "status":
            self._send(state.embed_status, f"<h1>{UPSTREAM_SECRET_MARKER}</h1>".encode(), "text/html")
            return
        with owner._lock:
            life = state.embed_lives.pop(0) if state.embed_lives else state.embed_life_s
        session = self._issue(life, None) if state.embed_page != "no_session" else None
        body = assets.render_embed(entity, session, garbled=state.embed_page == "garbled")
        padding = b" " * (3 * 1024 * 1024) if state.embed_page == "huge" else b""
        self._send(200, padding + body, "text/html; charset=utf-8")

    def _pathfinder(self, body: bytes) -> None:
        """A live token this fake issued, then the operation's current hash, else Spotify's refusals."""
        owner, state = self.owner, self.owner.state
        owner._record("pathfinder")
        bearer = self.headers.get("Authorization", "").removeprefix("Bearer ")
        with owner._lock:
            live = any(i.access_token == bearer and i.expires_at > time.time() for i in state.issued)
        if state.partner_refuses or not live:
            status = state.partner_refuses or 401
            self._send_json(status, {"error": {"status": status, "message": UPSTREAM_SECRET_MARKER}})
            return
        if self.headers.get("App-Platform") != "WebPlayer":
            self._send_json(400, {"error": {"status": 400, "message": "missing App-Platform"}})
            return
        query = json.loads(body)
        operation = query["operationName"]
        if not state.pathfinder.accepts(operation, query["extensions"]["persistedQuery"]["sha256Hash"]):
            self._send_json(200, PERSISTED_QUERY_NOT_FOUND)
            return
        uri = query["variables"]["uri"]
        self._send_json(200, {"data": {"trackUnion": {"__typename": "Track", "uri": uri, "name": "Fake"}}})

    def _token(self) -> None:
        owner = self.owner
        owner._record("token")
        peer = self.client_address[0]
        answer = owner.state.blocked_peers.get(peer) or owner._next_answer()
        query = parse_qs(urlsplit(self.path).query)
        cookies = {
            name: morsel.value for name, morsel in SimpleCookie(self.headers.get("Cookie", "")).items()
        }
        with owner._lock:
            user_agent = self.headers.get("User-Agent", "")
            owner.state.calls.append(TokenCall(time.time(), cookies, user_agent, query, answer, peer))
        if answer.kind == "hang":
            owner._release.wait(HANG_LIMIT_S)
            return
        if answer.delay_s or answer.kind == "slow":
            owner._release.wait(answer.delay_s)  # cut short by reset(), so the thread and socket go
        if not accepts(owner.key, query.get("totp", [""])[0], time.time()):
            answer = Answer("invalid_totp")
        elif any(query.get(name) != [value] for name, value in owner.state.required.items()):
            answer = Answer("status", status=400)
        self._answer_token(answer, cookies.get("sp_dc"))

    def _answer_token(self, answer: Answer, sp_dc: str | None) -> None:
        marker = UPSTREAM_SECRET_MARKER
        if answer.kind == "status":
            self._send(answer.status, f"<h1>{marker}</h1>".encode(), "text/html")
        elif answer.kind == "rate_limited":
            extra = [("Retry-After", answer.retry_after)] if answer.retry_after is not None else []
            self._send(429, marker.encode(), "text/plain", headers=extra)
        elif answer.kind == "malformed":
            self._send(200, f"{{not json {marker}".encode(), "application/json")
        elif answer.kind == "truncated":
            self._send(200, b'{"accessToken": "BQ', "application/json")
        elif answer.kind in {"error_body", "invalid_totp"}:
            self._send_json(400, {"error": {"code": 400, "message": f"Invalid TOTP {marker}"}})
        else:
            life = {"expired": -60.0, "short": 60.0}.get(answer.kind, answer.life_s)
            self._send_json(200, self._issue(life, sp_dc))

    def _issue(self, life_s: float, sp_dc: str | None) -> dict[str, object]:
        owner = self.owner
        account = owner.state.accounts.get(sp_dc) if sp_dc else None
        token = "BQ" + secrets.token_urlsafe(48)
        with owner._lock:
            owner.state.issued.append(Issued(token, account is None, account, time.time() + life_s))
        return {
            "clientId": CLIENT_ID,
            "accessToken": token,
            "accessTokenExpirationTimestampMs": int((time.time() + life_s) * 1000),
            "isAnonymous": account is None,
            "_notes": "Usage of this endpoint is not permitted under the Spotify Developer Terms.",
        }

    def _send_json(self, status: int, payload: object) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        *,
        cookies: Iterable[str] = (),
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for cookie in cookies:
                self.send_header("Set-Cookie", f"{cookie}; Domain=.spotify.com; Path=/; Secure")
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True
