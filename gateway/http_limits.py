"""HTTP request heads bounded at the protocol level: 431 before a large head is buffered.

uvicorn's httptools protocol (llhttp) sets no limit on the request line or the headers: a
64 MB header is read, kept and handed to the application. h11 has one
(``h11_max_incomplete_event_size``), but answers it with a plain-text 400 and costs more CPU
per request than httptools. So the gateway runs uvicorn's httptools protocol with two checks
added, :class:`HeaderLimitedHttpToolsProtocol`:

- **bytes**: the request target and every header name and value the parser reports are
  counted, and so is every chunk that arrives while a head is still incomplete (the parser
  keeps those bytes until the head ends). Beyond ``max_bytes`` the connection is answered 431
  and closed; what the process holds of one head is therefore at most ``max_bytes`` plus one
  read of the socket (256 KiB) — a 64 MB header is never buffered;
- **count**: header ``max_count + 1`` stops the parse the same way.

After the answer the server sends its FIN and discards what still arrives for
:data:`LINGER_S`, then closes, so a client still sending its head reads the 431 rather than a
connection reset.

The answer is the gateway's JSON error body, ``{"code": "request_header_too_large", "message",
"request_id"}``, with ``X-Request-ID`` and ``Connection: close``. It is written by the protocol,
before any request exists, so the application's middleware never sees it: the protocol writes
the request log line and counts ``medserve_errors_total{code="request_header_too_large"}``
itself (uvicorn also logs its own warning "Invalid HTTP request received." for refusals that
go through its handling of parser errors).

Each answer's head is written to the socket together with its first body chunk
(:class:`_CoalescedWrites`) where uvicorn writes them apart: one send, one packet and one
wake-up of the client instead of two. ``GET /healthz`` (benchmarks/gateway_cpu.py, in turns
with the gateway without it, 10 rounds of 2000 requests): 0.95× the CPU per request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from .metrics import ERRORS

log = logging.getLogger("medserve.gateway")

CODE = "request_header_too_large"
#: Seconds a refused connection stays open, its incoming bytes discarded, after the 431 and a
#: FIN are sent: closing a socket with unread data sends a reset, which can destroy the answer
#: before the client reads it (nginx's "lingering close").
LINGER_S = 1.0


@dataclass(frozen=True)
class HeaderLimits:
    """Caps on one request head: the request line and headers."""

    max_bytes: int = 64 * 1024
    """Bytes of the request target and of header names and values (``MEDSERVE_MAX_REQUEST_HEADER_BYTES``)."""
    max_count: int = 100
    """Header lines (``MEDSERVE_MAX_REQUEST_HEADERS``)."""


@lru_cache
def settings_header_limits() -> HeaderLimits:
    """The limits of :class:`gateway.config.Settings`."""
    from .config import get_settings

    settings = get_settings()
    return HeaderLimits(max_bytes=settings.max_request_header_bytes, max_count=settings.max_request_headers)


class _CoalescedWrites:
    """A request cycle's view of the connection's transport that holds a response head (a
    write beginning with a final status line) until the next write, the end of the answer or
    a close, and sends them together; the bytes and their order are unchanged, and
    everything else is the transport's own."""

    __slots__ = ("_transport", "_held")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        if self._held is not None:
            held, self._held = self._held, None
            self._transport.write(held + data)
        elif data[:9] == b"HTTP/1.1 " and data[9:10] != b"1":  # a head; "100 Continue" goes at once
            self._held = bytes(data)
        else:
            self._transport.write(data)

    def flush(self) -> None:
        if self._held is not None:
            held, self._held = self._held, None
            self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> object:
        return getattr(self._transport, name)


class _HeadTooLarge(Exception):
    """Raised in a parser callback to stop llhttp; httptools re-raises it as a parser error."""


class HeaderLimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol that refuses request heads beyond :class:`HeaderLimits`.

    ``header_limits`` None reads them from the gateway's settings; a subclass may fix them."""

    header_limits: ClassVar[HeaderLimits | None] = None

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._limits = self.header_limits or settings_header_limits()
        self._reading_head = True
        self._unparsed_head_bytes = 0  # bytes received since the last head or message ended
        self._head_bytes = 0  # request target + header names and values reported by the parser
        self._header_count = 0
        self._refusal: str | None = None

    def data_received(self, data: bytes) -> None:
        if self._refusal is not None:
            return
        if self._reading_head:
            self._unparsed_head_bytes += len(data)
        super().data_received(data)
        if self._refusal is None and self._reading_head and self._unparsed_head_bytes > self._limits.max_bytes:
            self._refuse(f"the request head exceeds {self._limits.max_bytes} bytes")

    def on_message_begin(self) -> None:
        self._head_bytes = 0
        self._header_count = 0
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self._count_head_bytes(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self._limits.max_count:
            self._refusal = f"the request has more than {self._limits.max_count} header lines"
            raise _HeadTooLarge(self._refusal)
        self._count_head_bytes(len(name) + len(value))
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._unparsed_head_bytes = 0
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle.transport is self.transport:
            writes = cycle.transport = _CoalescedWrites(self.transport)
            answered = cycle.on_response

            def flush_then_answered() -> None:  # a HEAD answer, or one whose body was never written
                writes.flush()
                answered()

            cycle.on_response = flush_then_answered

    def on_message_complete(self) -> None:
        self._reading_head = True
        self._unparsed_head_bytes = 0
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a parser error; ours when the error is a refused head."""
        if self._refusal is not None:
            self._answer_431(self._refusal)
        else:
            super().send_400_response(msg)

    def _count_head_bytes(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self._limits.max_bytes:
            self._refusal = f"the request head exceeds {self._limits.max_bytes} bytes"
            raise _HeadTooLarge(self._refusal)

    def _refuse(self, message: str) -> None:
        self._refusal = message
        self._answer_431(message)

    def _answer_431(self, message: str) -> None:
        request_id = uuid.uuid4().hex
        # No request reaches the app, so its middleware cannot see this one: counted and logged here.
        ERRORS.labels(CODE).inc()
        log.info("request", extra={"request_id": request_id, "route": "unmatched", "status": 431, "code": CODE})
        body = json.dumps({"code": CODE, "message": message, "request_id": request_id}).encode()
        head = [STATUS_LINE[431]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: ", str(len(body)).encode(), b"\r\n",
            b"x-request-id: ", request_id.encode(), b"\r\n",
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_S, self.transport.close)
