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


def _segmentation_spec(tiny_classifier_spec, depth: int, label: str):
    """The tiny classifier's spec turned into a 3D segmenter of [depth, 10, 10] with one class."""
    spec = load_spec(tiny_classifier_spec())
    return spec.model_copy(
        update={
            "task": "segmentation-3d",
            "inputs": [spec.inputs[0].model_copy(update={"name": "volume", "shape": [-1, 1, depth, 10, 10]})],
            "outputs": [OutputSpec(name="labels", meaning="segmentation_labels", labels=["background", label], dtype="uint8")],
        }
    )


def test_segmentation_reference_measures_mask_volumes(tiny_classifier_spec) -> None:
    spec = _segmentation_spec(tiny_classifier_spec, depth=4, label="nodule")
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


def _enhanced_header(name: str):
    """A real enhanced multi-frame header: spacing and thickness only in its functional groups."""
    import gzip
    import io
    from pathlib import Path

    import nibabel
    import pydicom

    from devtools.testdata import pydicom_test_file

    if name == "philips_mprage":
        path = Path(nibabel.__file__).parent / "nicom" / "tests" / "data" / "philips_mprage.dcm.gz"
        return pydicom.dcmread(io.BytesIO(gzip.decompress(path.read_bytes())), stop_before_pixels=True)
    return pydicom.dcmread(pydicom_test_file(name), stop_before_pixels=True)


@pytest.mark.parametrize(
    "name, spacing, thickness, slices",
    [
        ("philips_mprage", (1.0, 1.0), 1.0, 176),  # nibabel's Philips enhanced MR: 176 frames
        ("eCT_Supplemental.dcm", (0.388672, 0.388672), 10.0, 2),  # pydicom-data's enhanced CT
        ("CT_small.dcm", (0.661468, 0.661468), 5.0, 1),  # single-frame: the top-level attributes
    ],
)
def test_header_geometry_reads_the_functional_groups_of_enhanced_sources(name, spacing, thickness, slices) -> None:
    from export.drift_reference import header_geometry, volume_slices

    header = _enhanced_header(name)
    assert "PixelSpacing" not in header or slices == 1  # the enhanced files have none at the top level
    got_spacing, got_thickness = header_geometry(header)
    assert got_spacing == pytest.approx(spacing) and got_thickness == pytest.approx(thickness)
    assert volume_slices([header]) == slices


def test_mask_volume_bins_cover_whole_organs() -> None:
    from export.drift_reference import MASK_VOLUME_EDGES_ML

    edges = np.asarray(MASK_VOLUME_EDGES_ML)
    assert edges[0] == 0 and edges[1] == pytest.approx(1e-6)  # the empty-mask bin
    inner = edges[2:-1]
    assert np.allclose(inner[1:] / inner[:-1], 2.0)  # log-spaced: doubling steps
    assert inner[0] == pytest.approx(0.05) and inner[-1] >= 5000  # a 4 mm lesion .. both lungs (~5-6 L)
    organs_ml = {"kidney": 150.0, "spleen": 200.0, "liver": 1500.0, "brain": 1300.0, "lungs": 5500.0}
    bins = {organ: int(np.searchsorted(edges, v, side="right") - 1) for organ, v in organs_ml.items()}
    assert all(b < len(edges) - 2 for b in bins.values())  # none in the open-ended last bin
    assert len({bins["kidney"], bins["liver"], bins["lungs"]}) == 3  # told apart, not all "> 64 mL"


def test_segmentation_reference_of_organ_sized_masks(tiny_classifier_spec) -> None:
    """A brain-sized (1.3 L) and a liver-sized (0.26 L after halving) mask land in different bins."""
    spec = _segmentation_spec(tiny_classifier_spec, depth=10, label="brain")
    info = SourceInfo("MR", "x", 10, 10, 10, (10.0, 10.0), 13.0, (13.0, 10.0, 10.0))  # 1.3 mL voxels
    cases = PreparedSet(cases=["a", "b"], inputs={"volume": np.zeros((2, 1, 10, 10, 10), np.float32)}, sources={"volume": [info, info]})
    labels = np.ones((2, 10, 10, 10), np.uint8)
    labels[1, 5:] = 0  # half the volume
    brain = drift_reference(spec, cases, [labels], "validation")["predictions"]["classes"]["brain"]
    assert (brain["min"], brain["max"]) == (pytest.approx(650.0), pytest.approx(1300.0))
    filled = [i for i, c in enumerate(brain["counts"]) if c]
    assert len(filled) == 2 and filled[-1] < len(brain["counts"]) - 1
