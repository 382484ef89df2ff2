"""The error tree maps onto HTTP in one place, with one body shape."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from gateway.errors import (
    PREPROCESSING_STATUS,
    EmptyBody,
    GatewayError,
    InferenceFailed,
    InferenceTimeout,
    ModelMisconfigured,
    ModelNotFound,
    ModelNotReady,
    PayloadTooLarge,
    TritonUnavailable,
    UnsupportedMediaType,
    install_error_handlers,
)
from preprocessing import errors as preprocessing_errors


def _app_raising(exc: Exception) -> TestClient:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise exc

    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize(
    ("error", "status", "code", "retry_after"),
    [
        (ModelNotFound("m"), 404, "model_not_found", None),
        (UnsupportedMediaType("m"), 415, "unsupported_media_type", None),
        (EmptyBody("m"), 400, "empty_body", None),
        (PayloadTooLarge("m"), 413, "payload_too_large", None),
        (TritonUnavailable("m"), 503, "triton_unavailable", "5"),  # clients should retry
        (ModelNotReady("m"), 503, "model_not_ready", "5"),
        (InferenceTimeout("m"), 504, "inference_timeout", None),
        (InferenceFailed("m"), 502, "inference_failed", None),
        (ModelMisconfigured("m"), 500, "model_misconfigured", None),  # our fault, not the client's
    ],
)
def test_gateway_errors(error: GatewayError, status: int, code: str, retry_after: str | None) -> None:
    response = _app_raising(error).get("/boom")
    assert response.status_code == status
    assert response.json() == {"code": code, "message": "m", "request_id": ""}
    assert response.headers.get("Retry-After") == retry_after


def _preprocessing_error_classes() -> list[type]:
    base = preprocessing_errors.PreprocessingError
    return [cls for cls in vars(preprocessing_errors).values() if isinstance(cls, type) and issubclass(cls, base) and cls is not base]


@pytest.mark.parametrize("error_class", _preprocessing_error_classes(), ids=lambda c: c.__name__)
def test_every_preprocessing_error_has_a_status(error_class: type) -> None:
    assert error_class.code in PREPROCESSING_STATUS
    response = _app_raising(error_class("what to fix")).get("/boom")
    assert response.status_code == PREPROCESSING_STATUS[error_class.code]
    assert response.json()["code"] == error_class.code
    assert response.json()["message"] == "what to fix"


@pytest.mark.parametrize("error_class", _preprocessing_error_classes(), ids=lambda c: c.__name__)
def test_client_errors_are_never_500(error_class: type) -> None:
    if error_class.code == "invalid_spec":  # a malformed spec in a model config is a server fault
        assert PREPROCESSING_STATUS[error_class.code] == 500
    else:
        assert 400 <= PREPROCESSING_STATUS[error_class.code] < 500


def test_unexpected_exception_is_a_generic_500_without_details() -> None:
    response = _app_raising(RuntimeError("secret internals")).get("/boom")
    assert response.status_code == 500
    assert response.json()["code"] == "internal_error"
    assert "secret" not in response.text
