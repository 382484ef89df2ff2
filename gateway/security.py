"""Optional API keys: ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``.

Keys are configured as ``{key_id: key}``; only the key id ever reaches logs and the audit
trail. Comparison is constant-time.
"""

from __future__ import annotations

import hmac

from fastapi import Request

from .errors import Forbidden, Unauthorized

#: Routes open without a key: orchestrators and Prometheus must reach them.
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def presented_key(request: Request) -> str | None:
    authorization = request.headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("x-api-key") or None


def authenticate(request: Request, api_keys: dict[str, str]) -> str:
    """The key id of the caller ("anonymous" when keys are not configured)."""
    if not api_keys or request.url.path in PUBLIC_PATHS:
        return "anonymous"
    key = presented_key(request)
    if key is None:
        raise Unauthorized("this route needs an API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'")
    for key_id, expected in api_keys.items():
        if hmac.compare_digest(key.encode(), expected.encode()):
            return key_id
    raise Forbidden("the API key is not valid")
