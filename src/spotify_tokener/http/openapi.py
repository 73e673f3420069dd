"""The OpenAPI document, built from the routes and the response types, and an offline Swagger UI."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from spotify_tokener import __version__
from spotify_tokener.domain.hashes import METADATA_TYPES, OPERATION, SHA256
from spotify_tokener.domain.token import SP_DC
from spotify_tokener.http import schemas
from spotify_tokener.http.params import COOKIE_OCTETS, FALSE_WORDS, MAX_COOKIE_SIZE, TRUE_WORDS
from spotify_tokener.http.router import Route


def _swagger_assets() -> Path:
    """Swagger UI 5 (it reads OpenAPI 3.1) from the swagger-ui-py distribution, found without
    importing it: its import pulls Jinja2 and PyYAML, and serving its files needs neither."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("swagger-ui-py is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


SWAGGER_ASSETS = _swagger_assets()
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


def _any_case(word: str) -> str:
    """A regular expression for ``word`` in any case (JSON Schema patterns have no flags)."""
    return "".join(f"[{c.upper()}{c}]" if c.isalpha() else c for c in word)


_FORCE_WORDS = sorted(TRUE_WORDS) + sorted(FALSE_WORDS)
_FORCE_PARAMETER = {
    "name": "force",
    "in": "query",
    "required": False,
    "description": "Fetch a new token even if the cached one is fresh: 1, true or yes (any case). "
    "0, false, no and empty mean no; anything else is a 400.",
    "schema": {"type": "string", "pattern": f"^(?:{'|'.join(_any_case(w) for w in _FORCE_WORDS)})$"},
    "examples": {word or "empty": {"value": word} for word in ("1", "true", "0", "")},
}


_SP_DC_OCTETS = f"{COOKIE_OCTETS.pattern.removesuffix('+')}{{1,{MAX_COOKIE_SIZE - len(SP_DC)}}}"
_SP_DC_PARAMETER = {
    "name": SP_DC,
    "in": "cookie",
    "required": False,
    "description": "A logged-in Spotify session (what LavaSrc sends when `spDc` is set): the answer is "
    "that account's token. Other cookies are ignored. A value that is empty, too long or not made of "
    "cookie characters (RFC 6265, optionally in double quotes) is a 400.",
    # The same rule params.parse_sp_dc applies, so generated clients and fuzzers know what is accepted.
    "schema": {"type": "string", "pattern": f'^(?:{_SP_DC_OCTETS}|"{_SP_DC_OCTETS}")$'},
}


def _content(*names: str) -> dict[str, Any]:
    refs = [{"$ref": f"#/components/schemas/{name}"} for name in names]
    schema = refs[0] if len(refs) == 1 else {"anyOf": refs}
    return {"content": {"application/json": {"schema": schema}}}


def _answer(description: str, *bodies: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, **_content(*bodies), **({"headers": headers} if headers else {})}


_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds until asking again is worth it: Spotify's own Retry-After on a 429, "
        "the rest of the cool-down after repeated failures, or, when the service is busy, how long "
        "its queue waits; never more than TOKENER_RETRY_AFTER_MAX.",
        "schema": {"type": "integer", "minimum": 1},
    }
}
_KEY_REFUSED = "The API key is missing or wrong (TOKENER_API_KEY is set)"
_WWW_AUTHENTICATE = {"WWW-Authenticate": {"description": "Always `Bearer`", "schema": {"type": "string"}}}
_SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "One of the keys in TOKENER_API_KEY"},
    "key": {"type": "apiKey", "in": "query", "name": "key", "description": "The same, for LavaSrc's URL"},
}


def _token_failures(api_keys: bool) -> dict[str, Any]:
    refused = "Spotify did not accept the sp_dc cookie"
    if api_keys:
        unauthorized = _answer(
            f"{refused}; or: {_KEY_REFUSED}",
            "FailureBody",
            "ErrorBody",
            headers={**_RETRY_AFTER, **_WWW_AUTHENTICATE},
        )
    else:
        unauthorized = _answer(refused, "FailureBody", headers=_RETRY_AFTER)
    return {
        "400": _answer("A bad parameter or a malformed sp_dc cookie", "ValidationErrorBody"),
        "401": unauthorized,
        "403": _answer("Account tokens are disabled on this service", "FailureBody"),
        "500": _answer(
            "A bug of the service: during a fetch (FailureBody) or elsewhere (ErrorBody)",
            "FailureBody",
            "ErrorBody",
            headers=_RETRY_AFTER,
        ),
        "502": _answer("Spotify answered, but not with a usable token", "FailureBody", headers=_RETRY_AFTER),
        "503": _answer(
            "Browser unavailable, Spotify rate-limited the service, the service is busy with other "
            "account tokens or new accounts, or it is shutting down",
            "FailureBody",
            headers=_RETRY_AFTER,
        ),
        "504": _answer(
            "No token in time (TOKENER_DIRECT_TIMEOUT, TOKENER_FETCH_TIMEOUT)",
            "FailureBody",
            headers=_RETRY_AFTER,
        ),
    }


def _components(api_keys: bool) -> dict[str, Any]:
    bodies = (
        schemas.TokenBody,
        schemas.FailureBody,
        schemas.ValidationErrorBody,
        schemas.ErrorBody,
        schemas.StatusBody,
        schemas.HealthBody,
        schemas.HashesBody,
        schemas.MetadataBody,
    )
    found: dict[str, Any] = {}
    for body in bodies:
        schema = TypeAdapter(body).json_schema(ref_template="#/components/schemas/{model}")
        found.update(schema.pop("$defs", {}))
        found[body.__name__] = schema
    components: dict[str, Any] = {"schemas": found}
    if api_keys:
        components["securitySchemes"] = _SECURITY_SCHEMES
    return components


def token_get(api_keys: bool) -> dict[str, Any]:
    return {
        "summary": "The current token, fetched if the cache has none fresh enough",
        "parameters": [_FORCE_PARAMETER, _SP_DC_PARAMETER],
        "responses": {
            "200": _answer("A token with minutes of life left", "TokenBody"),
            **_token_failures(api_keys),
        },
    }


def token_refresh(api_keys: bool) -> dict[str, Any]:
    return {
        "summary": "Fetch a new token now (joins a fetch already under way)",
        "parameters": [_SP_DC_PARAMETER],
        "responses": {"200": _answer("A new token", "TokenBody"), **_token_failures(api_keys)},
    }


def token_status(api_keys: bool) -> dict[str, Any]:
    return {
        "summary": "The cache and refresher state (times in ms)",
        "responses": {"200": _answer("Status", "StatusBody"), **_key_refused(api_keys)},
    }


def _hash_operation(
    summary: str, parameters: list[Any], ok: dict[str, Any], api_keys: bool
) -> dict[str, Any]:
    failed = _answer("No hashes read yet: the last reading's failure", "FailureBody", headers=_RETRY_AFTER)
    bad = _answer("A bad parameter", "ValidationErrorBody")
    statuses = {"400": bad, **_key_refused(api_keys), "502": failed, "503": failed, "504": failed}
    return {"summary": summary, "parameters": parameters, "responses": {**ok, **statuses}}


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "description": description, "schema": schema}


def hashes(api_keys: bool) -> dict[str, Any]:
    stale = _query(
        "stale",
        "A hash Spotify refused (PersistedQueryNotFound): if it is served, the page is read again before "
        "answering (at most once per TOKENER_HASHES_MIN_INTERVAL, whoever reports).",
        {"type": "string", "pattern": f"^{SHA256.pattern}$"},
    )
    ok = {"200": _answer("Every operation; the last set known while reading fails", "HashesBody")}
    return _hash_operation("The web player's persisted-query hashes and app version", [stale], ok, api_keys)


def metadata(api_keys: bool) -> dict[str, Any]:
    words = ", ".join(f"{word} ({name})" for word, name in METADATA_TYPES.items())
    parameters = [
        _query("type", f"One of: {words}", {"type": "string", "enum": list(METADATA_TYPES)}),
        _query(
            "operation",
            "Any operation's name (wins over type)",
            {"type": "string", "pattern": f"^{OPERATION.pattern}$"},
        ),
    ]
    ok = {
        "200": _answer("The operation's hash", "MetadataBody"),
        "404": _answer("No type or an unknown one, or an operation the scripts do not name", "ErrorBody"),
    }
    return _hash_operation("One operation's hash and the app version", parameters, ok, api_keys)


def health(api_keys: bool) -> dict[str, Any]:
    return {
        "summary": "Liveness, uptime and memory of the service and its browser",
        "responses": {"200": _answer("Healthy", "HealthBody")},
    }


def metrics(api_keys: bool) -> dict[str, Any]:
    plain_text = {"text/plain": {"schema": {"type": "string"}}}
    return {
        "summary": "Prometheus metrics (text format 0.0.4); needs the API key when one is set",
        "responses": {"200": {"description": "Metrics", "content": plain_text}, **_key_refused(api_keys)},
    }


def _key_refused(api_keys: bool) -> dict[str, Any]:
    return {"401": _answer(_KEY_REFUSED, "ErrorBody", headers=_WWW_AUTHENTICATE)} if api_keys else {}


def build_openapi(routes: Iterable[Route], *, api_keys: bool = False) -> dict[str, Any]:
    """The document of every route that has one; with ``api_keys`` (TOKENER_API_KEY set) it also
    describes the key, its 401, and which routes stay open."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        if route.document is None:
            continue
        operation = route.document(api_keys)
        if api_keys and route.open:
            operation["security"] = []
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "spotify-tokener", "version": __version__},
        "paths": paths,
        "components": _components(api_keys),
    }
    if api_keys:
        document["security"] = [{"bearer": []}, {"key": []}]
    return document
