"""Whatever escapes a handler is still an answer the operator can see: JSON with the request id
(body and header), one log line with its type and place (never its message), counted in
``medserve_errors_total`` and the 5xx latency series, and audited as a failed request.

A route that raises is added to the real application for this; no input known to medserve
reaches such a path (the fuzz suite in tests/reliability checks that), so this is how the
safety net itself is held to its contract.
"""

from __future__ import annotations

import json
import logging

import pytest
from fastapi import Response
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from gateway.config import Settings
from gateway.main import create_app

SECRET = "PATIENT^SECRET^NAME"


@pytest.fixture
def app_with_a_broken_route(tmp_path):
    settings = Settings(triton_grpc_url="127.0.0.1:9", audit_log_path=str(tmp_path / "audit.jsonl"))
    app = create_app(settings)

    @app.post("/dicomweb/broken")
    async def broken() -> None:
        raise ValueError(f"Unable to convert '{SECRET}' to 'PN'")  # a library message quoting a value

    @app.get("/dicomweb/broken-midway")
    async def broken_midway() -> Response:
        async def body():
            yield b"{"
            raise ValueError(SECRET)

        from fastapi.responses import StreamingResponse

        return StreamingResponse(body(), media_type="application/json")

    return app, tmp_path / "audit.jsonl"


def _errors(code: str) -> float:
    return REGISTRY.get_sample_value("medserve_errors_total", {"code": code}) or 0.0


def _server_errors(route: str) -> float:
    labels = {"model": "", "route": route, "status_class": "5xx"}
    return REGISTRY.get_sample_value("medserve_request_duration_seconds_count", labels) or 0.0


def test_an_escaped_exception_is_answered_logged_counted_and_audited(app_with_a_broken_route, caplog) -> None:
    app, audit = app_with_a_broken_route
    errors_before, latency_before = _errors("internal_error"), _server_errors("/dicomweb/broken")
    with caplog.at_level(logging.INFO), TestClient(app, raise_server_exceptions=False) as client:
        response = client.post("/dicomweb/broken", headers={"X-Request-ID": "trace-42"})

    assert response.status_code == 500
    assert response.json() == {"code": "internal_error", "message": "internal server error", "request_id": "trace-42"}
    assert response.headers["X-Request-ID"] == "trace-42"
    assert _errors("internal_error") == errors_before + 1
    assert _server_errors("/dicomweb/broken") == latency_before + 1

    unhandled = [r for r in caplog.records if r.getMessage() == "unhandled error"]
    assert len(unhandled) == 1
    assert unhandled[0].error_type == "ValueError" and "test_unexpected_errors.py" in unhandled[0].raised_at
    assert unhandled[0].exc_info is None  # no traceback: its text would quote the value
    requests = [r for r in caplog.records if r.getMessage() == "request" and getattr(r, "route", "") == "/dicomweb/broken"]
    assert [(r.status, r.code) for r in requests] == [(500, "internal_error")]
    assert all(SECRET not in r.getMessage() and SECRET not in json.dumps(vars(r), default=str) for r in caplog.records)

    (record,) = [json.loads(line) for line in audit.read_text().splitlines()]
    assert (record["request_id"], record["outcome"], record["status_code"]) == ("trace-42", "internal_error", 500)


def test_an_exception_after_the_answer_began_is_counted_and_the_connection_dropped(app_with_a_broken_route, caplog) -> None:
    app, audit = app_with_a_broken_route
    errors_before = _errors("internal_error")
    with caplog.at_level(logging.INFO), TestClient(app, raise_server_exceptions=True) as client:
        with pytest.raises(ValueError):  # the server layer closes the connection: the client never sees a whole answer
            client.get("/dicomweb/broken-midway")
    assert _errors("internal_error") == errors_before + 1
    assert [r.error_type for r in caplog.records if r.getMessage() == "unhandled error"] == ["ValueError"]
    (record,) = [json.loads(line) for line in audit.read_text().splitlines()]
    assert record["outcome"] == "internal_error"
