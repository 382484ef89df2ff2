"""Predictions through the gateway and a real tritonserver, on DICOM written by others."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from preprocessing import PreprocessingSpec, preprocess_instance, read_dataset

MODEL = "ct_nodule_classifier"
DICOM = {"Content-Type": "application/dicom"}


@pytest.mark.parametrize("name", ["693_UNCI", "CT_small", "CTImageStorage"])
def test_real_ct_gives_valid_probabilities(gateway: TestClient, real_ct_files, name: str) -> None:
    response = gateway.post(f"/v1/models/{MODEL}/predict", content=real_ct_files[name].read_bytes(), headers=DICOM)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == MODEL
    assert body["model_version"] == "1"
    assert {p["label"] for p in body["probabilities"]} == {"no_nodule", "nodule"}
    total = sum(p["probability"] for p in body["probabilities"])
    assert total == pytest.approx(1.0, abs=1e-5)
    assert body["top_label"] == body["probabilities"][0]["label"]
    assert body["preprocessing"]["window"] == {"center": -600.0, "width": 1500.0, "function": "LINEAR", "preset": "lung"}
    assert set(body["timings_ms"]) == {"receive", "decode", "preprocess", "infer", "postprocess", "total"}
    assert all(v >= 0 for v in body["timings_ms"].values())
    assert response.headers["X-Request-ID"] == body["request_id"]


def test_prediction_equals_onnxruntime_on_the_same_file(gateway: TestClient, real_ct_files, model_repository) -> None:
    """What the gateway answers is what the exported ONNX model computes on that file."""
    import onnxruntime as ort

    path = real_ct_files["693_UNCI"]
    card = gateway.get(f"/v1/models/{MODEL}").json()
    prepared = preprocess_instance(read_dataset(path.read_bytes()), PreprocessingSpec.from_dict(card["preprocessing"]))
    session = ort.InferenceSession(str(model_repository / MODEL / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    expected = session.run(None, {"image": prepared.array[None]})[0][0]

    body = gateway.post(f"/v1/models/{MODEL}/predict", content=path.read_bytes(), headers=DICOM).json()
    served = {p["label"]: p["probability"] for p in body["probabilities"]}
    np.testing.assert_allclose([served["no_nodule"], served["nodule"]], expected, atol=1e-6)


def test_phantom_with_nodule_is_flagged_and_without_is_not(gateway: TestClient, tmp_path) -> None:
    from devtools.dicomgen import ct_dataset
    from devtools.phantoms import chest_slice

    rng = np.random.default_rng(11)
    answers = {}
    for nodules in (0, 1):
        phantom = chest_slice(rng, size=512, nodules=nodules)
        path = tmp_path / f"nodules_{nodules}.dcm"
        ct_dataset(phantom.hu, pixel_spacing_mm=phantom.spacing_mm).save_as(path, enforce_file_format=True)
        body = gateway.post(f"/v1/models/{MODEL}/predict", content=path.read_bytes(), headers=DICOM).json()
        answers[nodules] = {p["label"]: p["probability"] for p in body["probabilities"]}["nodule"]
    assert answers[1] > 0.5 > answers[0]


def test_model_list_and_card_come_from_triton_config(gateway: TestClient) -> None:
    models = gateway.get("/v1/models").json()["models"]
    assert {"name": MODEL, "version": "1", "state": "READY"} in models

    card = gateway.get(f"/v1/models/{MODEL}").json()
    assert card["task"] == "classification"
    assert card["labels"] == ["no_nodule", "nodule"]
    assert card["ready"] is True
    [image] = card["inputs"]
    assert (image["name"], image["dtype"], image["shape"], image["modality"]) == ("image", "float32", [-1, 1, 128, 128], "CT")
    assert card["preprocessing"]["window"]["preset"] == "lung"
    assert len(card["export_report_digest"]) == 64


def test_health_readiness_and_metrics(gateway: TestClient) -> None:
    assert gateway.get("/healthz").json() == {"status": "ok"}
    ready = gateway.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ready" and body["triton"] is True
    assert body["models"][MODEL] is True and all(body["models"].values())
    metrics = gateway.get("/metrics")
    assert metrics.status_code == 200
    assert "medserve_request_duration_seconds_bucket" in metrics.text
    assert 'medserve_stage_duration_seconds_count{model="ct_nodule_classifier",stage="infer"}' in metrics.text


def test_openapi_documents_routes(gateway: TestClient) -> None:
    paths = gateway.get("/openapi.json").json()["paths"]
    assert {"/v1/models", "/v1/models/{name}", "/v1/models/{name}/predict", "/healthz", "/readyz", "/metrics"} <= set(paths)
    assert "application/dicom" in paths["/v1/models/{name}/predict"]["post"]["requestBody"]["content"]
