"""The in-process "script" baseline answers what the served model answers: the same exported
ONNX, preprocessing, sliding window and source-grid measurements, only without serving. No
timing is asserted."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from benchmarks.script_baseline import ScriptModel, answer
from benchmarks.serving.inputs import classifier_payloads, multipart_form
from benchmarks.serving.variants import CLASSIFIER, SEGMENTER_3D


def test_script_classifier_answers_the_served_probabilities(gateway, model_repository: Path) -> None:
    model = ScriptModel.open(model_repository / CLASSIFIER)
    for payload in classifier_payloads():
        served = gateway.post(f"/v1/models/{CLASSIFIER}/predict", content=payload.body, headers={"Content-Type": payload.content_type})
        script = json.loads(answer(model, [payload.body]))

        assert served.status_code == 200, served.text
        assert script["top_label"] == served.json()["top_label"]
        expected = {p["label"]: p["probability"] for p in served.json()["probabilities"]}
        assert {p["label"]: pytest.approx(p["probability"], abs=1e-6) for p in script["probabilities"]} == expected


def test_script_3d_measures_on_the_source_grid_what_the_gateway_measures(gateway, model_repository: Path) -> None:
    from devtools.testdata import chest_ct_series

    # 40 slices of 2 mm: taller than the 32-slice patch, so both tile with the sliding window.
    bodies = []
    for ds in chest_ct_series(seed=3, slices=40):
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        bodies.append(buffer.getvalue())
    body, content_type = multipart_form([(f"{k}.dcm", b) for k, b in enumerate(bodies)])
    served = gateway.post(f"/v1/models/{SEGMENTER_3D}/predict", content=body, headers={"Content-Type": content_type})
    script = json.loads(answer(ScriptModel.open(model_repository / SEGMENTER_3D), bodies))

    assert served.status_code == 200, served.text
    assert served.json()["patches"] > 1
    assert script["shape"] == served.json()["grid"]["shape"]
    measured = {m["label"]: m for m in served.json()["measurements"]}
    assert measured["nodule"]["voxels"] > 0
    for entry in script["measurements"]:
        assert entry["voxels"] == measured[entry["label"]]["voxels"]
        assert entry["components"] == measured[entry["label"]]["components"]
        assert entry["volume_ml"] == pytest.approx(measured[entry["label"]]["volume_ml"], rel=1e-6)
