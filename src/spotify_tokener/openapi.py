"""The OpenAPI document and an offline Swagger UI, both built from the response types."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import TypeAdapter
from swagger_ui_bundle import swagger_ui_path

from spotify_tokener import __version__, schemas

SWAGGER_ASSETS = Path(str(swagger_ui_path))
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

_FORCE_PARAMETER = {
    "name": "force",
    "in": "query",
    "required": False,
    "description": "Fetch a new token even if the cached one is fresh: 1, true or yes (any case). "
    "0, false, no and empty mean no; anything else is a 400.",
    "schema": {"type": "string", "enum": ["1", "true", "yes", "0", "false", "no", ""]},
}


_SP_DC_PARAMETER = {
    "name": "sp_dc",
    "in": "cookie",
    "required": False,
    "description": "A logged-in Spotify session (what LavaSrc sends when `spDc` is set): the answer is "
    "that account's token. Other cookies are ignored.",
    "schema": {"type": "string"},
}


def _ref(name: str) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}}


def _answer(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, **_ref(schema)}


_TOKEN_FAILURES = {
    "400": _answer("A bad parameter or a malformed sp_dc cookie", "ValidationErrorBody"),
    "401": _answer("Spotify did not accept the sp_dc cookie", "FailureBody"),
    "403": _answer("Account tokens are disabled on this service", "FailureBody"),
    "500": _answer("Unexpected failure while fetching a token", "FailureBody"),
    "502": _answer("Spotify answered, but not with a usable token", "FailureBody"),
    "503": _answer("Browser unavailable, or Spotify rate-limited the service", "FailureBody"),
    "504": _answer("No token within TOKENER_FETCH_TIMEOUT", "FailureBody"),
}


def _components() -> dict[str, Any]:
    bodies = (
        schemas.TokenBody,
        schemas.FailureBody,
        schemas.ValidationErrorBody,
        schemas.ErrorBody,
        schemas.StatusBody,
        schemas.HealthBody,
    )
    found: dict[str, Any] = {}
    for body in bodies:
        schema = TypeAdapter(body).json_schema(ref_template="#/components/schemas/{model}")
        found.update(schema.pop("$defs", {}))
        found[body.__name__] = schema
    return found


def build_openapi() -> dict[str, Any]:
    token_get = {
        "summary": "The current token, fetched if the cache has none fresh enough",
        "parameters": [_FORCE_PARAMETER, _SP_DC_PARAMETER],
        "responses": {"200": _answer("A token with minutes of life left", "TokenBody"), **_TOKEN_FAILURES},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "spotify-tokener", "version": __version__},
        "paths": {
            "/api/token": {"get": token_get},
            "/api/token/refresh": {
                "post": {
                    "summary": "Fetch a new token now (joins a fetch already under way)",
                    "parameters": [_SP_DC_PARAMETER],
                    "responses": {"200": _answer("A new token", "TokenBody"), **_TOKEN_FAILURES},
                }
            },
            "/api/token/status": {
                "get": {
                    "summary": "The cache and refresher state (times in ms)",
                    "responses": {"200": _answer("Status", "StatusBody")},
                }
            },
            "/health": {
                "get": {
                    "summary": "Liveness, uptime and memory of the service and its browser",
                    "responses": {"200": _answer("Healthy", "HealthBody")},
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics (text format 0.0.4); needs the API key when one is set",
                    "responses": {
                        "200": {
                            "description": "Metrics",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
        },
        "components": {"schemas": _components()},
    }
