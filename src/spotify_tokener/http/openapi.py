"""The OpenAPI document and an offline Swagger UI.

Nothing in it is written twice: the bodies' schemas are msgspec's reading of ``http/schemas.py``,
the token routes' failures are the failure table (``FAILURES``), the parameters' patterns are the
rules ``http/params.py`` applies, and the API key's 401 is added to every route that is not open.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from spotify_tokener import __version__
from spotify_tokener.domain.errors import FAILURES, CallerLeft
from spotify_tokener.domain.hashes import METADATA_TYPES, OPERATION, SHA256
from spotify_tokener.domain.token import SP_DC
from spotify_tokener.http import schemas
from spotify_tokener.http.params import COOKIE_OCTETS, FALSE_WORDS, MAX_COOKIE_SIZE, TRUE_WORDS

if TYPE_CHECKING:
    from spotify_tokener.http.app import Route


# Swagger UI 5 (it reads OpenAPI 3.1) from the swagger-ui-py distribution, found without importing it:
# its import pulls Jinja2 and PyYAML, and serving its files needs neither.
_SWAGGER_UI = importlib.util.find_spec("swagger_ui")
if _SWAGGER_UI is None or _SWAGGER_UI.origin is None:
    raise RuntimeError("swagger-ui-py is not installed")
SWAGGER_ASSETS = Path(_SWAGGER_UI.origin).parent / "static"
SWAGGER_FILES = {
    "swagger-ui.css": "text/css",
    "swagger-ui-bundle.js": "text/javascript",
    "favicon-32x32.png": "image/png",
}
SWAGGER_HTML = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>spotify-tokener API</title>
<link rel="stylesheet" href="/swagger/swagger-ui.css">
<link rel="icon" href="/swagger/favicon-32x32.png"></head>
<body><div id="swagger-ui"></div>
<script src="/swagger/swagger-ui-bundle.js"></script>
<script src="/swagger/init.js"></script>
</body></html>
"""
SWAGGER_INIT = 'window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui"});\n'
# By path: the content type, and the bytes or the file served.
SWAGGER_PAGES: dict[str, tuple[str, bytes, str | None]] = {
    "/swagger": ("text/html; charset=utf-8", SWAGGER_HTML.encode(), None),
    "/swagger/init.js": ("text/javascript", SWAGGER_INIT.encode(), None),
    **{f"/swagger/{name}": (kind, b"", str(SWAGGER_ASSETS / name)) for name, kind in SWAGGER_FILES.items()},
}


def _any_case(word: str) -> str:
    """A regular expression for ``word`` in any case (JSON Schema patterns have no flags)."""
    return "".join(f"[{c.upper()}{c}]" if c.isalpha() else c for c in word)


def _pattern(regex: str) -> dict[str, Any]:
    return {"type": "string", "pattern": f"^(?:{regex})$"}


def _parameter(name: str, description: str, schema: dict[str, Any], where: str = "query") -> dict[str, Any]:
    return {"name": name, "in": where, "description": description, "schema": schema}


_FORCE = _parameter(
    "force",
    "Fetch a new token even if the cached one is fresh: 1, true or yes (any case). "
    "0, false, no and empty mean no; anything else is a 400.",
    _pattern("|".join(_any_case(word) for word in sorted(TRUE_WORDS) + sorted(FALSE_WORDS))),
) | {"required": False, "examples": {word or "empty": {"value": word} for word in ("1", "true", "0", "")}}
_SP_DC_OCTETS = f"{COOKIE_OCTETS.pattern.removesuffix('+')}{{1,{MAX_COOKIE_SIZE - len(SP_DC)}}}"
_SP_DC = _parameter(
    SP_DC,
    "A logged-in Spotify session (what LavaSrc sends when `spDc` is set): the answer is "
    "that account's token. Other cookies are ignored. A value that is empty, too long or not made of "
    "cookie characters (RFC 6265, optionally in double quotes) is a 400.",
    _pattern(f'{_SP_DC_OCTETS}|"{_SP_DC_OCTETS}"'),
    "cookie",
) | {"required": False}


_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds until asking again is worth it: Spotify's own Retry-After on a 429, "
        "the rest of the cool-down after repeated failures, or, when the service is busy, how long "
        "its queue waits; never more than TOKENER_RETRY_AFTER_MAX.",
        "schema": {"type": "integer", "minimum": 1},
    }
}
_WWW_AUTHENTICATE = {"WWW-Authenticate": {"description": "Always `Bearer`", "schema": {"type": "string"}}}
_SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "One of the keys in TOKENER_API_KEY"},
    "key": {"type": "apiKey", "in": "query", "name": "key", "description": "The same, for LavaSrc's URL"},
}


def _answer(description: str, *bodies: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    refs = [{"$ref": f"#/components/schemas/{body}"} for body in bodies]
    schema = refs[0] if len(refs) == 1 else {"anyOf": refs}
    return {"description": description, "content": {"application/json": {"schema": schema}}} | (
        {"headers": headers} if headers else {}
    )


def _either(first: dict[str, Any] | None, second: dict[str, Any]) -> dict[str, Any]:
    """One status with two causes: both described, either body, every header."""
    if first is None:
        return second
    bodies = [answer["content"]["application/json"]["schema"] for answer in (first, second)]
    return {
        "description": f"{first['description']}; or: {second['description']}",
        "content": {"application/json": {"schema": {"anyOf": bodies}}},
        "headers": {**first.get("headers", {}), **second.get("headers", {})},
    }


_KEY_REFUSED = _answer(
    "The API key is missing or wrong (TOKENER_API_KEY is set)", "ErrorBody", headers=_WWW_AUTHENTICATE
)


def _token_failures() -> dict[str, Any]:
    """Each status a token request can fail with, and why: the failure table's rows that reach a client."""
    causes: dict[int, list[str]] = {}
    for kind, row in list(FAILURES.items())[1:]:  # not the base's
        if row.status != CallerLeft.status:  # nobody is left to read it
            causes.setdefault(row.status, []).append(f"`{kind}`: {row.when}")
    answers = {
        str(status): _answer("; ".join(whys), "FailureBody", headers=_RETRY_AFTER)
        for status, whys in sorted(causes.items())
    }
    answers["500"] = _either(answers["500"], _answer("a bug outside a fetch", "ErrorBody"))
    return {"400": _answer("A bad parameter or a malformed sp_dc cookie", "ValidationErrorBody"), **answers}


def _hash_failures(ok: dict[str, Any]) -> dict[str, Any]:
    failed = _answer("No hashes read yet: the last reading's failure", "FailureBody", headers=_RETRY_AFTER)
    bad = _answer("A bad parameter", "ValidationErrorBody")
    return {**ok, "400": bad, "502": failed, "503": failed, "504": failed}


token_get = {
    "summary": "The current token, fetched if the cache has none fresh enough",
    "parameters": [_FORCE, _SP_DC],
    "responses": {"200": _answer("A token with minutes of life left", "TokenBody"), **_token_failures()},
}
token_refresh = {
    "summary": "Fetch a new token now (joins a fetch already under way)",
    "parameters": [_SP_DC],
    "responses": {"200": _answer("A new token", "TokenBody"), **_token_failures()},
}
token_status = {
    "summary": "The cache and refresher state (times in ms)",
    "responses": {"200": _answer("Status", "StatusBody")},
}
hashes = {
    "summary": "The web player's persisted-query hashes and app version",
    "parameters": [
        _parameter(
            "stale",
            "A hash Spotify refused (PersistedQueryNotFound): if it is served, the page is read again "
            "before answering (at most once per TOKENER_HASHES_MIN_INTERVAL, whoever reports).",
            _pattern(SHA256.pattern),
        )
    ],
    "responses": _hash_failures(
        {"200": _answer("Every operation; the last set known while reading fails", "HashesBody")}
    ),
}
metadata = {
    "summary": "One operation's hash and the app version",
    "parameters": [
        _parameter(
            "type",
            f"One of: {', '.join(f'{word} ({name})' for word, name in METADATA_TYPES.items())}",
            {"type": "string", "enum": list(METADATA_TYPES)},
        ),
        _parameter("operation", "Any operation's name (wins over type)", _pattern(OPERATION.pattern)),
    ],
    "responses": _hash_failures(
        {
            "200": _answer("The operation's hash", "MetadataBody"),
            "404": _answer("No type or an unknown one, or an operation the scripts do not name", "ErrorBody"),
        }
    ),
}
health = {
    "summary": "Liveness, uptime and memory of the service and its browser",
    "responses": {"200": _answer("Healthy", "HealthBody")},
}
metrics = {
    "summary": "Prometheus metrics (text format 0.0.4); needs the API key when one is set",
    "responses": {
        "200": {"description": "Metrics", "content": {"text/plain": {"schema": {"type": "string"}}}}
    },
}


def build_openapi(routes: Iterable[Route], *, api_keys: bool = False) -> dict[str, Any]:
    """The document of every route that has one; with ``api_keys`` (TOKENER_API_KEY set) it also
    describes the key, its 401, and which routes stay open."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        if route.document is None:
            continue
        operation = dict(route.document)
        if api_keys and route.open:
            operation["security"] = []
        elif api_keys:
            responses = operation["responses"]
            operation["responses"] = {**responses, "401": _either(responses.get("401"), _KEY_REFUSED)}
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    bodies = [body for name, body in vars(schemas).items() if name.endswith("Body")]
    _, found = msgspec.json.schema_components(bodies, ref_template="#/components/schemas/{name}")
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "spotify-tokener", "version": __version__},
        "paths": paths,
        "components": {"schemas": found},
    }
    if api_keys:
        document["components"]["securitySchemes"] = _SECURITY_SCHEMES
        document["security"] = [{"bearer": []}, {"key": []}]
    return document
