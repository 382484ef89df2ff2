"""Drift reference: fixed-bin histograms of inputs, header facts and predictions."""

from __future__ import annotations

import numpy as np
import pytest

from export.data import PreparedSet, SourceInfo, load_calibration_set
from export.drift_reference import GEOMETRY_EDGES, INTENSITY_BINS, drift_reference
from export.spec import OutputSpec, load_spec


def test_classifier_reference(tiny_classifier_spec) -> None:
    spec = load_spec(tiny_classifier_spec())
    calibration = load_calibration_set(spec)
    probabilities = np.stack([np.linspace(0, 1, 64), 1 - np.linspace(0, 1, 64)], axis=1).astype(np.float32)
    reference = drift_reference(spec, calibration, [probabilities], "calibration")

    assert (reference["version"], reference["source"], reference["cases"]) == (1, "calibration", 64)
    image = reference["inputs"]["image"]
    assert image["modality"] == "CT" and image["modality_mix"] == {"CT": 1.0}
    assert image["manufacturer_mix"] == {"medserve-phantom": 1.0}
    intensity = image["intensity"]
    assert intensity["edges"] == pytest.approx(np.linspace(0, 1, INTENSITY_BINS + 1))  # lung window → [0, 1]
    assert sum(intensity["counts"]) == 64 * 128 * 128
    assert intensity["mean"] == pytest.approx(float(calibration.inputs["image"].mean()), abs=1e-5)
    assert intensity["p01"] <= intensity["p50"] <= intensity["p99"]
    rows = image["geometry"]["rows"]
    assert rows["edges"] == GEOMETRY_EDGES["rows"] and sum(rows["counts"]) == 64 and rows["mean"] == 256
    assert image["geometry"]["prepared_spacing_mm"]["mean"] == pytest.approx(360 / 128)
    nodule = reference["predictions"]["classes"]["nodule"]
    assert nodule["edges"] == pytest.approx(np.linspace(0, 1, 11)) and sum(nodule["counts"]) == 64
    assert reference["predictions"]["top_label_mix"] == {"no_nodule": 0.5, "nodule": 0.5}


def test_segmentation_reference_measures_mask_volumes(tiny_classifier_spec) -> None:
    spec = load_spec(tiny_classifier_spec())
    spec = spec.model_copy(
        update={
            "task": "segmentation-3d",
            "inputs": [spec.inputs[0].model_copy(update={"name": "volume", "shape": [-1, 1, 4, 10, 10]})],
            "outputs": [OutputSpec(name="labels", meaning="segmentation_labels", labels=["background", "nodule"], dtype="uint8")],
        }
    )
    info = SourceInfo("CT", "x", 10, 10, 4, (2.0, 2.0), 2.0, (2.0, 2.0, 2.0))
    cases = PreparedSet(cases=["a", "b"], inputs={"volume": np.zeros((2, 1, 4, 10, 10), np.float32)}, sources={"volume": [info, info]})
    labels = np.zeros((2, 4, 10, 10), np.uint8)
    labels[1, :, :5, :5] = 1  # 100 voxels of 8 mm³ = 0.8 ml
    reference = drift_reference(spec, cases, [labels], "validation")

    prediction = reference["predictions"]
    assert (prediction["unit"], prediction["meaning"]) == ("ml", "segmentation_labels")
    nodule = prediction["classes"]["nodule"]
    assert (nodule["min"], nodule["max"], nodule["empty_fraction"]) == (0.0, pytest.approx(0.8), 0.5)
    assert nodule["counts"][0] == 1 and sum(nodule["counts"]) == 2  # the empty mask has its own bin
    assert reference["source"] == "validation"
