"""Bring your own model, end to end (issue 14, items 3, 9 and 10): deepbet — a published two-stage
brain-extraction cascade of TorchScript networks from its PyPI wheel — exported with
``medserve export`` from its specs alone, served by a real Triton through the gateway on a real
Philips enhanced multi-frame oblique MR header carrying a real brain (the MNI ICBM152 T1), and
compared with deepbet's own pipeline (its ``BrainExtraction.run`` on a NIfTI built from the same
DICOM with pydicom alone)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from fastapi.testclient import TestClient

from gateway.outputs import rle

pytestmark = pytest.mark.e2e

DICOM = {"Content-Type": "application/dicom"}


@pytest.fixture(scope="module")
def reference(deepbet_brain: Path):
    from devtools.thirdparty.deepbet_reference import deepbet_reference

    return deepbet_reference(deepbet_brain)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


def test_export_writes_both_stages_and_verifies_the_whole_cascade(deepbet_exported):
    repository, result, lines = deepbet_exported
    assert {p.name for p in repository.iterdir() if p.is_dir()} >= {"deepbet", "deepbet_localiser"}
    steps = {step.name: step for step in result.report.steps}
    assert steps["export_localiser"].status.value == "OK"
    verify = steps["verify_cascade"]
    assert verify.status.value == "OK" and "label disagreement" in verify.detail, verify.detail
    assert not [line for line in lines if "onnxruntime" in line.lower() and "warning" in line.lower()]


def test_served_mask_matches_deepbets_own_pipeline(deepbet_served: TestClient, deepbet_brain: Path, reference):
    response = deepbet_served.post("/v1/models/deepbet/predict?format=rle", content=deepbet_brain.read_bytes(), headers=DICOM)
    assert response.status_code == 200, response.text
    body = response.json()
    served_mask = rle.decode(body["masks"]["brain"]).astype(bool)
    expected = reference.mask_in_slice_order().astype(bool)
    assert served_mask.shape == expected.shape == (176, 256, 256)
    dice = _dice(served_mask, expected)
    assert dice >= 0.99, f"Dice {dice:.5f} against deepbet's own pipeline"
    # one instance listed once, both stages timed, the localiser's region recorded
    assert len(body["grid"]["sop_instance_uids"]) == 1 and len(body["grid"]["frames"]) == 176
    assert body["preprocessing"]["cascade"]["localiser"]["model"] == "deepbet_localiser"
    assert body["warnings"] == []  # the brain is within both stages' input quality gates
    timings = body["timings_ms"]
    assert timings["localiser.infer"] > 0 and timings["model.infer"] > 0
    assert timings["infer"] == pytest.approx(timings["localiser.infer"] + timings["model.infer"], abs=0.01)


def test_the_brain_volume_is_deepbets_tiv(deepbet_served: TestClient, deepbet_brain: Path, reference):
    body = deepbet_served.post("/v1/models/deepbet/predict", content=deepbet_brain.read_bytes(), headers=DICOM).json()
    volume_ml = next(m["volume_ml"] for m in body["measurements"] if m["label"] == "brain")
    assert volume_ml == pytest.approx(reference.tiv_ml, rel=0.01)


def test_a_blank_mr_is_refused_not_segmented(deepbet_served: TestClient, deepbet_brain: Path):
    ds = pydicom.dcmread(deepbet_brain)
    ds.PixelData = bytes(len(ds.PixelData))
    buffer = io.BytesIO()
    ds.save_as(buffer)
    response = deepbet_served.post("/v1/models/deepbet/predict", content=buffer.getvalue(), headers=DICOM)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "input_out_of_range"  # the localiser's gate, before any inference

