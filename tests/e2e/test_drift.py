"""Drift through the real gateway and Triton: in-distribution traffic stays quiet, +300 HU does not."""

from __future__ import annotations

import io

import numpy as np
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from gateway.config import Settings
from gateway.main import create_app
from devtools.dicomgen import ct_dataset
from devtools.phantoms import chest_slice

MODEL = "ct_nodule_classifier"


def _slices(seed: int, count: int, shift_hu: float) -> list[bytes]:
    rng = np.random.default_rng(seed)
    bodies = []
    for i in range(count):
        phantom = chest_slice(rng, size=256, nodules=i % 2)
        buffer = io.BytesIO()
        ct_dataset(phantom.hu + shift_hu, pixel_spacing_mm=phantom.spacing_mm).save_as(buffer, enforce_file_format=True)
        bodies.append(buffer.getvalue())
    return bodies


def _gauge(client: TestClient, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    raise AssertionError(f"{name}{labels} is not published")


def _score(client: TestClient, feature: str, stat: str) -> float:
    return _gauge(client, "medserve_drift_score", model=MODEL, feature=feature, stat=stat)


def test_intensity_shift_crosses_the_threshold(triton) -> None:
    settings = Settings(triton_grpc_url=triton.grpc_url, model_cache_ttl_s=0, drift_window_size=30, drift_min_samples=10)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        for body in _slices(100, 30, shift_hu=0.0):  # like the calibration data
            assert client.post(f"/v1/models/{MODEL}/predict", content=body, headers={"Content-Type": "application/dicom"}).status_code == 200
        assert _score(client, "image.intensity", "psi") < 0.1
        assert _score(client, "image.intensity", "ks") < 0.2
        calm_prediction = _score(client, "prediction.nodule", "psi")

        for body in _slices(200, 30, shift_hu=300.0):  # a miscalibrated scanner: +300 HU everywhere
            assert client.post(f"/v1/models/{MODEL}/predict", content=body, headers={"Content-Type": "application/dicom"}).status_code == 200
        assert _score(client, "image.intensity", "psi") > 0.25
        assert _score(client, "image.intensity", "ks") > 0.2
        assert _score(client, "prediction.nodule", "psi") >= calm_prediction
        assert _gauge(client, "medserve_drift_window_samples", model=MODEL) == 30
