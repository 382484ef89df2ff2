"""``format=csv``: the measurements of a segmentation, one row per foreground class."""

from __future__ import annotations

import csv
import io
from types import SimpleNamespace

import numpy as np
import pytest
from fastapi.testclient import TestClient

from contract import Task
from gateway.outputs.measurements import measure_labels
from gateway.outputs.registry import OutputFormat, encode
from devtools.dicomgen import ct_dataset
from devtools.phantoms import chest_slice

DICOM = {"Content-Type": "application/dicom"}


def _rows(content: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(content.decode("utf-8"))))


def test_one_row_per_class_in_physical_units() -> None:
    labels_map = np.zeros((2, 10, 10), dtype=np.uint8)
    labels_map[0, 1:4, 1:4] = 1  # 9 voxels
    labels_map[1, 5:7, 5:7] = 1  # a second component
    labels_map[1, 0, 0:5] = 2  # a 5-voxel line: 4 voxel steps of 0.5 mm
    affine = np.diag([2.0, 0.5, 0.5, 1.0])
    measurements = measure_labels(labels_map, affine, ["background", "nodule, solid", "vessel"])
    card = SimpleNamespace(name="seg", task=Task.SEGMENTATION_2D)
    result = SimpleNamespace(model_version="3", measurements=measurements, labels_map=labels_map, applied={})

    response = encode(OutputFormat.CSV, card, result, {}, "r1")

    assert response.media_type == "text/csv"
    assert response.headers["X-Model-Version"] == "3"
    assert response.headers["Content-Disposition"] == 'attachment; filename="seg-measurements.csv"'
    assert response.body.splitlines()[0] == b"label,voxels,volume_ml,components,largest_diameter_mm"
    nodule, vessel = _rows(response.body)
    assert nodule == {"label": "nodule, solid", "voxels": "13", "volume_ml": str(13 * 0.5 / 1000), "components": "2", "largest_diameter_mm": str(measurements[0].largest_diameter_mm)}
    assert (vessel["label"], vessel["components"], float(vessel["largest_diameter_mm"])) == ("vessel", "1", 2.0)


@pytest.fixture(scope="module")
def nodule_slice() -> bytes:
    phantom = chest_slice(np.random.default_rng(21), size=512, nodules=1)
    buffer = io.BytesIO()
    ct_dataset(phantom.hu, pixel_spacing_mm=phantom.spacing_mm, slice_thickness_mm=2.5).save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_the_gateway_answers_the_json_measurements_as_csv(gateway: TestClient, nodule_slice: bytes) -> None:
    by_format = gateway.post("/v1/models/ct_nodule_segmenter/predict?format=csv", content=nodule_slice, headers=DICOM)
    assert by_format.status_code == 200, by_format.text
    assert by_format.headers["content-type"].startswith("text/csv")
    by_accept = gateway.post("/v1/models/ct_nodule_segmenter/predict", content=nodule_slice, headers={**DICOM, "Accept": "text/csv"})
    assert by_accept.content == by_format.content

    measurements = gateway.post("/v1/models/ct_nodule_segmenter/predict", content=nodule_slice, headers=DICOM).json()["measurements"]
    rows = _rows(by_format.content)
    assert [row["label"] for row in rows] == [m["label"] for m in measurements] == ["nodule"]
    assert [{key: float(value) for key, value in row.items() if key != "label"} for row in rows] == [
        {key: value for key, value in m.items() if key != "label"} for m in measurements
    ]
    assert float(rows[0]["volume_ml"]) > 0


def test_a_classifier_has_no_csv(gateway: TestClient, nodule_slice: bytes) -> None:
    response = gateway.post("/v1/models/ct_nodule_classifier/predict?format=csv", content=nodule_slice, headers=DICOM)
    assert response.status_code == 422
    assert response.json()["code"] == "output_unavailable"
