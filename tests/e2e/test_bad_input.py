"""Bad input gets a clear 4xx JSON error with a stable code — never a 500."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

MODEL = "ct_nodule_classifier"
DICOM = {"Content-Type": "application/dicom"}


def _assert_error(response, status: int, code: str, message_part: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code
    assert message_part in body["message"]
    assert body["request_id"] == response.headers["X-Request-ID"]


@pytest.mark.parametrize(
    ("body", "status", "code", "message_part"),
    [
        (b"this is a text file, not DICOM", 400, "invalid_dicom", "not a DICOM Part 10 file"),  # no preamble/DICM
        (b"\0" * 128 + b"DICM" + b"\x02\x00", 400, "invalid_dicom", "Transfer Syntax UID"),  # file meta cut off
        (b"", 400, "empty_body", "empty"),  # nothing sent
    ],
)
def test_not_dicom(gateway: TestClient, body: bytes, status: int, code: str, message_part: str) -> None:
    _assert_error(gateway.post(f"/v1/models/{MODEL}/predict", content=body, headers=DICOM), status, code, message_part)


def test_truncated_dicom(gateway: TestClient, testdata) -> None:
    data = testdata("MR_truncated.dcm").read_bytes()
    _assert_error(gateway.post(f"/v1/models/{MODEL}/predict", content=data, headers=DICOM), 400, "invalid_dicom", "truncated")


def test_dicom_without_pixel_data(gateway: TestClient, no_pixel_data_file) -> None:
    response = gateway.post(f"/v1/models/{MODEL}/predict", content=no_pixel_data_file.read_bytes(), headers=DICOM)
    _assert_error(response, 422, "missing_pixel_data", "no (7FE0,0010) Pixel Data")


def test_wrong_modality(gateway: TestClient, testdata) -> None:
    data = testdata("MR_small.dcm").read_bytes()
    _assert_error(gateway.post(f"/v1/models/{MODEL}/predict", content=data, headers=DICOM), 422, "modality_mismatch", "CT")


def test_unknown_model(gateway: TestClient, real_ct_files) -> None:
    data = real_ct_files["CT_small"].read_bytes()
    _assert_error(gateway.post("/v1/models/no_such_model/predict", content=data, headers=DICOM), 404, "model_not_found", "no_such_model")
    _assert_error(gateway.get("/v1/models/no_such_model"), 404, "model_not_found", "no_such_model")


def test_wrong_content_type(gateway: TestClient, real_ct_files) -> None:
    data = real_ct_files["CT_small"].read_bytes()
    response = gateway.post(f"/v1/models/{MODEL}/predict", content=data, headers={"Content-Type": "image/png"})
    _assert_error(response, 415, "unsupported_media_type", "application/dicom")


def test_unknown_route_is_json(gateway: TestClient) -> None:
    _assert_error(gateway.get("/v2/nothing"), 404, "not_found", "Not Found")
