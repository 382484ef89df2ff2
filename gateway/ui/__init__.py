"""The page: a small web application served from the gateway's own package (``static/``).

``GET /`` answers 307 to ``/ui/``; ``/ui/...`` serves the files of ``static/`` (index.html, ES
modules, one style sheet). The shell is public — it holds no data: every data call the page
makes goes to the ``/v1`` API with the key the person entered, so the API-key rule is the API's
own. It is served by :class:`StaticPage`, an ASGI layer in front of the gateway's request
context: the shell needs no key, no request id and no audit record, and it never appears in
OpenAPI. Every answer carries a strict Content-Security-Policy (nothing but this origin; no
inline script or style; images from this origin, ``data:`` and ``blob:``), so the page can show
what the gateway sends without being able to run anything it did not ship.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..metrics import ERRORS

#: Where the page's files are (package data of ``gateway.ui``).
STATIC_DIR = Path(__file__).resolve().parent / "static"
#: The URL prefix of the page.
PREFIX = "/ui"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-cache"),  # revalidated (ETag): a new gateway's page is seen at once
]


class StaticPage:
    """``/`` and ``/ui`` → 307 ``/ui/``; ``/ui/<file>`` from :data:`STATIC_DIR` with the security
    headers; every other path goes on to ``app`` unchanged. A missing file is a 404 and a method
    other than GET/HEAD a 405, both as the API's JSON error body (``not_found``,
    ``method_not_allowed``) and counted in ``medserve_errors_total``."""

    def __init__(self, app: ASGIApp, directory: Path = STATIC_DIR) -> None:
        self.app = app
        self.files = StaticFiles(directory=directory, html=True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path in ("/", PREFIX):
            await _send(send, 307, b"", [(b"location", f"{PREFIX}/".encode())])
        elif path.startswith(PREFIX + "/"):
            await self._serve(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *_HEADERS]}
            await send(message)

        inner = {**scope, "root_path": scope.get("root_path", "") + PREFIX}
        try:
            relative = self.files.get_path(inner)
            if os.path.normpath(relative) == "." and scope["path"] != PREFIX + "/":
                # "/ui/.", "/ui/app.js/..": the folder by another name; StaticFiles would redirect
                # to it, only "/ui/" is the page
                raise HTTPException(404)
            response = await self.files.get_response(relative, inner)
        except HTTPException as exc:
            # 405 for a write; anything else StaticFiles refuses (missing, outside static/, unreadable) is a 404
            status, code = (405, "method_not_allowed") if exc.status_code == 405 else (404, "not_found")
            ERRORS.labels(code).inc()  # counted as the API's error answers are
            message = "only GET and HEAD are served here" if status == 405 else "no such file of the page"
            request_id = uuid.uuid4().hex
            body = {"code": code, "message": message, "request_id": request_id}
            await _send(with_headers, status, json.dumps(body).encode(),
                        [(b"content-type", b"application/json"), (b"x-request-id", request_id.encode())])
            return
        await response(inner, receive, with_headers)


async def _send(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
