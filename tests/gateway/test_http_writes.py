"""An answer's head and its first body chunk leave in one write; nothing is held back that the
client is waiting for (a HEAD answer, ``100 Continue``, a chunked stream), and every byte
arrives in order."""

from __future__ import annotations

import asyncio
import socket
from typing import Iterator

import pytest

from .conftest import uvicorn_on_free_port
from gateway.http_limits import HeaderLimitedHttpToolsProtocol, HeaderLimits, _CoalescedWrites


class _RecordingTransport(asyncio.Transport):
    """A transport that keeps what is written to it, one entry per write."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True


def test_head_and_body_are_one_write() -> None:
    transport = _RecordingTransport()
    writes = _CoalescedWrites(transport)
    writes.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    assert transport.writes == []
    writes.write(b"{}")
    assert transport.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]


def test_continue_and_body_chunks_go_at_once() -> None:
    transport = _RecordingTransport()
    writes = _CoalescedWrites(transport)
    writes.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert transport.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    writes.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
    writes.write(b"2\r\nab\r\n")
    writes.write(b"0\r\n\r\n")
    assert transport.writes[1:] == [b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nab\r\n", b"0\r\n\r\n"]


def test_a_held_head_is_written_before_close() -> None:
    transport = _RecordingTransport()
    writes = _CoalescedWrites(transport)
    writes.write(b"HTTP/1.1 500 Internal Server Error\r\n\r\n")
    writes.close()
    assert transport.writes == [b"HTTP/1.1 500 Internal Server Error\r\n\r\n"] and transport.closed


class _Limits(HeaderLimitedHttpToolsProtocol):
    header_limits = HeaderLimits()


async def _app(scope, receive, send) -> None:
    """``/stream`` answers three chunks; anything else echoes the body's length."""
    if scope["type"] != "http":
        return
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    if scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        for part in (b"one,", b"two,", b"three"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    answer = str(size).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", str(len(answer)).encode())]})
    await send({"type": "http.response.body", "body": answer})


@pytest.fixture(scope="module")
def address() -> Iterator[tuple[str, int]]:
    with uvicorn_on_free_port(_app, _Limits) as bound:
        yield bound


def _read_until(connection: socket.socket, end: bytes) -> bytes:
    received = b""
    while not received.endswith(end):
        chunk = connection.recv(65536)
        if not chunk:
            break
        received += chunk
    return received


def test_head_request_is_answered_on_a_kept_connection(address) -> None:
    with socket.create_connection(address, timeout=5) as connection:
        connection.sendall(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n")
        head = _read_until(connection, b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ") and b"content-length: 1" in head.lower()
        connection.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc")
        assert _read_until(connection, b"\r\n\r\n3").startswith(b"HTTP/1.1 200 ")


def test_continue_is_sent_before_the_body(address) -> None:
    with socket.create_connection(address, timeout=5) as connection:
        connection.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        assert _read_until(connection, b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        connection.sendall(b"body")
        assert _read_until(connection, b"\r\n\r\n4").startswith(b"HTTP/1.1 200 ")


def test_pipelined_and_streamed_answers_arrive_whole_and_in_order(address) -> None:
    with socket.create_connection(address, timeout=5) as connection:
        connection.sendall(
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nab"
            b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n"
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nabcde"
        )
        received = _read_until(connection, b"\r\n\r\n5")
    first, _, rest = received.partition(b"\r\n\r\n2")
    assert first.startswith(b"HTTP/1.1 200 ")
    assert b"4\r\none,\r\n4\r\ntwo,\r\n5\r\nthree\r\n0\r\n\r\n" in rest
    assert rest.index(b"three") < rest.rindex(b"HTTP/1.1 200 ")
