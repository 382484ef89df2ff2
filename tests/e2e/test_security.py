"""API keys, admission control, upload caps, deadlines — and no patient data in any log."""

from __future__ import annotations

import hashlib
import io
import json
import urllib.request

import pydicom
import pytest
from fastapi.testclient import TestClient

from gateway.config import Settings
from gateway.main import create_app

MODEL = "ct_nodule_classifier"
DICOM = {"Content-Type": "application/dicom"}


def _client(triton, **overrides) -> TestClient:
    settings = Settings(triton_grpc_url=triton.grpc_url, model_cache_ttl_s=0, **overrides)
    return TestClient(create_app(settings), raise_server_exceptions=False)


@pytest.fixture(scope="module")
def keyed(triton):
    with _client(triton, api_keys={"ris": "k-ris-0123456789", "viewer": "k-viewer-987654"}) as client:
        yield client


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_health_and_metrics_need_no_key(keyed: TestClient, path: str) -> None:
    assert keyed.get(path).status_code == 200


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, "unauthorized"),  # no key at all
        ({"Authorization": "Bearer wrong"}, 403, "forbidden"),  # a key we do not know
        ({"X-API-Key": "k-ris-0123456789x"}, 403, "forbidden"),  # near miss
        ({"Authorization": "Bearer k-ris-0123456789"}, 200, None),  # bearer token
        ({"X-API-Key": "k-viewer-987654"}, 200, None),  # header key
    ],
)
def test_api_keys(keyed: TestClient, headers: dict, status: int, code: str | None) -> None:
    response = keyed.get("/v1/models", headers=headers)
    assert response.status_code == status
    if code:
        assert response.json()["code"] == code
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_over_capacity_is_429_not_a_queue(triton, real_ct_files) -> None:
    data = real_ct_files["CT_small"].read_bytes()
    with _client(triton, max_in_flight=1) as client:
        with client.app.state.admission.admit():  # another request holds the only slot
            response = client.post(f"/v1/models/{MODEL}/predict", content=data, headers=DICOM)
            assert response.status_code == 429
            assert response.json()["code"] == "overloaded"
            assert int(response.headers["Retry-After"]) >= 1
        assert client.post(f"/v1/models/{MODEL}/predict", content=data, headers=DICOM).status_code == 200
        assert 'medserve_rejections_total{reason="capacity"}' in client.get("/metrics").text


def test_upload_cap_is_enforced_while_streaming(triton, real_ct_files) -> None:
    data = real_ct_files["693_UNCI"].read_bytes()
    with _client(triton, max_upload_bytes=64 * 1024) as client:
        declared = client.post(f"/v1/models/{MODEL}/predict", content=data, headers=DICOM)
        assert declared.status_code == 413 and declared.json()["code"] == "payload_too_large"

        def chunks():  # no Content-Length: the cap must trip on the bytes received
            for start in range(0, len(data), 16 * 1024):
                yield data[start : start + 16 * 1024]

        streamed = client.post(f"/v1/models/{MODEL}/predict", content=chunks(), headers=DICOM)
        assert streamed.status_code == 413 and streamed.json()["code"] == "payload_too_large"


def test_deadline_exceeded_is_504(triton, real_ct_files) -> None:
    with _client(triton, triton_timeout_s=1e-4) as client:
        response = client.post(f"/v1/models/{MODEL}/predict", content=real_ct_files["CT_small"].read_bytes(), headers=DICOM)
    assert response.status_code == 504
    assert response.json()["code"] == "inference_timeout"


PHI = {"PatientName": "ZEBRA^QUENTIN^X", "PatientID": "PID-7731-SECRET", "PatientBirthDate": "19451231"}


def _with_phi(path, **changes) -> bytes:
    ds = pydicom.dcmread(path)
    for keyword, value in (PHI | changes).items():
        setattr(ds, keyword, value)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _post(url: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers=DICOM, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_no_phi_in_logs_and_a_hashed_audit_trail(live_gateway, real_ct_files, testdata) -> None:
    ok_body = _with_phi(real_ct_files["CT_small"])
    wrong_modality = _with_phi(testdata("MR_small.dcm"))
    status, answer = _post(f"{live_gateway['url']}/v1/models/{MODEL}/predict", ok_body)
    assert status == 200
    assert _post(f"{live_gateway['url']}/v1/models/{MODEL}/predict", wrong_modality)[0] == 422

    import time

    time.sleep(0.5)  # let the access log line reach the file
    log_text = live_gateway["log"].read_text()
    audit_text = live_gateway["audit"].read_text()
    for value in (*PHI.values(), "ZEBRA", "QUENTIN", "7731"):
        assert value not in log_text, f"{value!r} leaked into the gateway log"
        assert value not in audit_text, f"{value!r} leaked into the audit log"

    log_lines = [json.loads(line) for line in log_text.splitlines() if line.startswith("{")]
    assert any(line.get("request_id") == answer["request_id"] and line.get("status") == 200 for line in log_lines)

    records = [json.loads(line) for line in audit_text.splitlines()]
    [record] = [r for r in records if r["request_id"] == answer["request_id"]]
    source = pydicom.dcmread(real_ct_files["CT_small"], stop_before_pixels=True)
    assert record["study_uids"] == [hashlib.sha256(source.StudyInstanceUID.encode()).hexdigest()]
    assert record["sop_instance_uids"] == [hashlib.sha256(source.SOPInstanceUID.encode()).hexdigest()]
    assert source.StudyInstanceUID not in audit_text
    assert record["model"] == MODEL and record["model_version"] == "1"
    assert record["outcome"] == "ok" and record["status_code"] == 200 and record["latency_ms"] > 0
    assert record["key_id"] == "anonymous"
    assert any(r["outcome"] == "modality_mismatch" and r["status_code"] == 422 for r in records)


def test_readiness_names_no_model_when_keys_are_configured(keyed: TestClient, gateway: TestClient) -> None:
    open_answer = keyed.get("/readyz").json()  # /readyz is open: it must not tell strangers what is served
    assert open_answer["models"] == {} and open_answer["models_total"] >= 5
    assert open_answer["models_ready"] == open_answer["models_total"]
    assert set(gateway.get("/readyz").json()["models"]) >= {MODEL}  # without keys it lists them, as before


def test_api_keys_sent_in_a_query_string_never_reach_a_log(start_gateway, real_ct_files) -> None:
    secret = "k-querystring-LEAK-5521"
    process = start_gateway(api_keys=json.dumps({"ris": "k-ris-0123456789"}), log_level="debug")
    body = real_ct_files["CT_small"].read_bytes()
    for path in (
        f"/v1/models/{MODEL}/predict?api_key={secret}",  # no header key: 401
        f"/v1/models/{MODEL}/predict?api_key={secret}&slice=abc",
        f"/v1/models/no_such_model/predict?key={secret}",
        f"/nowhere?token={secret}",
    ):
        request = urllib.request.Request(process.url + path, data=body, headers=DICOM, method="POST")
        try:
            urllib.request.urlopen(request, timeout=30).close()
        except urllib.error.HTTPError as error:
            assert error.code in (401, 404, 405, 422)
    request = urllib.request.Request(
        f"{process.url}/v1/models/{MODEL}/predict?api_key={secret}&slice=abc",
        data=body,
        headers={**DICOM, "X-API-Key": "k-ris-0123456789"},
        method="POST",
    )
    try:
        urllib.request.urlopen(request, timeout=30).close()
    except urllib.error.HTTPError as error:
        assert error.code == 422 and secret not in error.read().decode()
    process.stop()
    assert "request" in process.log.read_text()
    assert secret not in process.log.read_text()
