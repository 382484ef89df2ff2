"""``medserve bench`` against real servers: the load generator and the stage readers on a live
gateway + tritonserver, and the baseline answering what medserve answers (a fair baseline
runs the same model on the same preprocessing). No timing is asserted."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from benchmarks.serving.inputs import classifier_payloads, series_payloads
from benchmarks.serving.load import Payload, closed_loop
from benchmarks.serving.stages import STAGES, gateway_stage_totals, stage_breakdown, triton_model_totals
from benchmarks.serving.variants import CLASSIFIER, SEGMENTER_3D


@pytest.fixture(scope="module")
def bench_gateway(start_gateway):
    return start_gateway()


def test_closed_loop_drives_the_gateway_and_the_stages_add_up(bench_gateway, triton) -> None:
    payloads = classifier_payloads()
    url = f"{bench_gateway.url}/v1/models/{CLASSIFIER}/predict"
    metrics = f"{bench_gateway.url}/metrics"
    stats = f"{triton.http_url}/v2/models/{CLASSIFIER}/stats"

    gateway_before = gateway_stage_totals(urllib.request.urlopen(metrics).read().decode(), CLASSIFIER)
    triton_before = triton_model_totals(json.loads(urllib.request.urlopen(stats).read()))
    result = asyncio.run(closed_loop(url, payloads, concurrency=3, max_requests=9, max_seconds=60, check=lambda body: b'"top_label"' in body))
    gateway_after = gateway_stage_totals(urllib.request.urlopen(metrics).read().decode(), CLASSIFIER)
    triton_after = triton_model_totals(json.loads(urllib.request.urlopen(stats).read()))

    assert result.errors == {}
    assert result.requests == 9
    summary = result.summary()
    assert summary["p50_ms"] <= summary["p95_ms"] <= summary["p99_ms"]
    breakdown = stage_breakdown(gateway_before, gateway_after, triton_before, triton_after)
    assert set(breakdown["gateway_ms"]) == {"request", *STAGES}
    assert breakdown["triton"]["requests"] == 9
    assert breakdown["triton"]["compute_infer_ms"] > 0


def test_closed_loop_counts_error_answers(bench_gateway) -> None:
    url = f"{bench_gateway.url}/v1/models/{CLASSIFIER}/predict"
    not_dicom = [Payload("not DICOM", b"hello", "application/dicom")]

    result = asyncio.run(closed_loop(url, not_dicom, concurrency=2, max_requests=4, max_seconds=60))

    assert result.requests == 0
    assert result.errors == {"400": 4}


@pytest.fixture(scope="module")
def baseline_classifier(monkeypatch_module):
    monkeypatch_module.setenv("MEDSERVE_BASELINE_MODEL", CLASSIFIER)
    from benchmarks.baseline import create_app

    with TestClient(create_app()) as client:
        yield client


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_baseline_classifier_answers_what_medserve_answers(baseline_classifier, gateway) -> None:
    for payload in classifier_payloads():
        headers = {"Content-Type": payload.content_type}
        ours = gateway.post(f"/v1/models/{CLASSIFIER}/predict", content=payload.body, headers=headers)
        theirs = baseline_classifier.post(f"/v1/models/{CLASSIFIER}/predict", content=payload.body, headers=headers)

        assert ours.status_code == theirs.status_code == 200, (ours.text, theirs.text)
        assert theirs.json()["top_label"] == ours.json()["top_label"]
        expected = {p["label"]: p["probability"] for p in ours.json()["probabilities"]}
        for entry in theirs.json()["probabilities"]:
            assert entry["probability"] == pytest.approx(expected[entry["label"]], abs=1e-4)  # ONNX FP32 vs PyTorch


def test_baseline_3d_finds_the_nodules_medserve_finds(monkeypatch, gateway, tmp_path: Path) -> None:
    monkeypatch.setenv("MEDSERVE_BASELINE_MODEL", SEGMENTER_3D)
    from benchmarks.baseline import create_app

    payload = series_payloads(tmp_path, count=1)[0]
    headers = {"Content-Type": payload.content_type}
    ours = gateway.post(f"/v1/models/{SEGMENTER_3D}/predict", content=payload.body, headers=headers)
    with TestClient(create_app()) as baseline:
        theirs = baseline.post(f"/v1/models/{SEGMENTER_3D}/predict", content=payload.body, headers=headers)

    assert ours.status_code == theirs.status_code == 200, (ours.text, theirs.text)
    ours_ml = next(m for m in ours.json()["measurements"] if m["label"] == "nodule")["volume_ml"]
    theirs_ml = next(m for m in theirs.json()["measurements"] if m["label"] == "nodule")["volume_ml"]
    assert theirs_ml > 0
    # Same network and preprocessing; the gateway measures on the source grid, the baseline on
    # the model grid (the same 2 mm grid here), and ONNX vs PyTorch may flip a boundary voxel.
    assert theirs_ml == pytest.approx(ours_ml, rel=0.05, abs=0.05)
