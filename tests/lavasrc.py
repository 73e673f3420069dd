"""A client that calls the token endpoint exactly as LavaSrc 4.x does (see ../shared/CONTEXT.md).

LavaSrc's ``customTokenEndpoint``: a plain GET of the configured URL with nothing added, a 3 s
connect timeout; for an account token, ``Cookie: sp_dc=<value>`` and ``App-Platform: WebPlayer``.
It reads ``accessToken`` and ``accessTokenExpirationTimestampMs``, fails on a non-null ``error``,
treats 404 and 204 as "no response", and fails on any other non-2xx.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

CONNECT_TIMEOUT_S = 3.0


class LavaSrcError(RuntimeError):
    pass


@dataclass(frozen=True)
class LavaSrcToken:
    access_token: str
    expires_at_ms: int


async def fetch_token(endpoint: str, sp_dc: str | None = None) -> LavaSrcToken | None:
    headers = {"Cookie": f"sp_dc={sp_dc}", "App-Platform": "WebPlayer"} if sp_dc else {}
    timeout = httpx.Timeout(30.0, connect=CONNECT_TIMEOUT_S)
    async with httpx.AsyncClient(timeout=timeout) as client:
        response = await client.get(endpoint, headers=headers)
    if response.status_code in {204, 404}:
        return None
    if not 200 <= response.status_code < 300:
        raise LavaSrcError(f"Server responded with an error: {response.status_code}")
    payload: dict[str, Any] = response.json()
    if payload.get("error") is not None:
        raise LavaSrcError(f"Error while fetching access token: {payload['error']}")
    expires = payload.get("accessTokenExpirationTimestampMs")
    return LavaSrcToken(str(payload.get("accessToken")), int(expires) if isinstance(expires, int) else 0)
