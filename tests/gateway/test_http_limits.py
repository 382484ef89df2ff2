"""Request heads are bounded by the HTTP protocol itself: beyond the byte or header-count cap the
connection is answered 431 with the gateway's JSON error body, before the head is complete."""

from __future__ import annotations

import json
import socket
from typing import Iterator

import pytest

from .conftest import uvicorn_on_free_port
from gateway.http_limits import CODE, HeaderLimitedHttpToolsProtocol, HeaderLimits

LIMITS = HeaderLimits(max_bytes=8 * 1024, max_count=10)


class _SmallLimits(HeaderLimitedHttpToolsProtocol):
    header_limits = LIMITS


async def _echo_header_count(scope, receive, send) -> None:
    """A plain ASGI app: answers how many headers and body bytes it was given."""
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    answer = json.dumps({"headers": len(scope["headers"]), "body": len(body)}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", str(len(answer)).encode())]})
    await send({"type": "http.response.body", "body": answer})


@pytest.fixture(scope="module")
def server_address() -> Iterator[tuple[str, int]]:
    with uvicorn_on_free_port(_echo_header_count, _SmallLimits) as address:
        yield address


def _exchange(address, *sends: bytes) -> bytes:
    """Send each chunk, then read until the server closes the connection or answers fully."""
    with socket.create_connection(address, timeout=10) as connection:
        for chunk in sends:
            connection.sendall(chunk)
        return _read_answers(connection)


def _read_answers(connection: socket.socket) -> bytes:
    received = b""
    try:
        while chunk := connection.recv(65536):
            received += chunk
            if b"connection: close" not in received.lower() and received.count(b'"body"') >= 2:
                break
    except (ConnectionResetError, TimeoutError):
        pass
    return received


def _request(target: str = "/", headers: list[tuple[str, str]] = (), body: bytes = b"", close: bool = True) -> bytes:
    lines = [f"POST {target} HTTP/1.1", "Host: test", f"Content-Length: {len(body)}", *(f"{n}: {v}" for n, v in headers)]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _assert_431(answer: bytes) -> None:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 "), answer[:200]
    error = json.loads(body)
    assert error["code"] == CODE and error["message"]
    assert f"x-request-id: {error['request_id']}".encode() in head.lower()
    assert b"connection: close" in head.lower()
    assert b"content-type: application/json" in head.lower()


def test_a_head_within_the_limits_reaches_the_application(server_address) -> None:
    answer = _exchange(server_address, _request(headers=[(f"X-{i}", "v" * 500) for i in range(6)]))
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["headers"] == 9


@pytest.mark.parametrize(
    "request_bytes",
    [
        _request(headers=[(f"X-{i}", "v") for i in range(LIMITS.max_count)]),  # 3 + 10 header lines: one too many
        _request(headers=[("X-Big", "v" * LIMITS.max_bytes)]),  # one value over the byte cap, sent in one piece
        _request(target="/" + "a" * LIMITS.max_bytes),  # the request target counts too
        _request(headers=[(f"X-{i}", "v" * (LIMITS.max_bytes // 8)) for i in range(9)]),  # many values adding up
    ],
    ids=["header_count", "one_large_value", "long_target", "values_adding_up"],
)
def test_a_head_beyond_a_limit_is_answered_431_with_the_json_error(server_address, request_bytes: bytes) -> None:
    from prometheus_client import REGISTRY

    def refused() -> float:
        return REGISTRY.get_sample_value("medserve_errors_total", {"code": CODE}) or 0.0

    before = refused()
    _assert_431(_exchange(server_address, request_bytes))
    assert refused() == before + 1  # seen by the error counter, though no request reached the app


def test_an_unfinished_head_beyond_the_byte_cap_is_answered_without_waiting_for_its_end(server_address) -> None:
    unfinished = b"GET / HTTP/1.1\r\nHost: test\r\nX-Endless: " + b"v" * (2 * LIMITS.max_bytes)
    _assert_431(_exchange(server_address, unfinished[:1000], unfinished[1000:]))  # never ends with \r\n\r\n


def test_a_body_arriving_with_its_head_is_not_counted_as_head(server_address) -> None:
    answer = _exchange(server_address, _request(body=b"b" * (4 * LIMITS.max_bytes)))
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["body"] == 4 * LIMITS.max_bytes


def test_the_caps_apply_per_request_on_a_kept_alive_connection(server_address) -> None:
    headers = [(f"X-{i}", "v" * (LIMITS.max_bytes // 10)) for i in range(5)]  # over half the byte cap each
    answer = _exchange(server_address, _request(headers=headers, close=False) + _request(headers=headers, close=False))
    assert answer.count(b"HTTP/1.1 200 ") == 2
