"""``format=viewer`` through the gateway and a real Triton: the slices a page shows with their
overlays, the same pictures, masks and measurements as the other formats give."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from devtools.dicomgen import write_ct_series
from devtools.phantoms import chest_volume
from gateway.outputs import rle

SEG_3D = "ct_nodule_segmenter_3d"


@pytest.fixture(scope="module")
def series_files(tmp_path_factory) -> list:
    """A 24-slice 160 x 160 CT series with nodules, as multipart file fields."""
    volume, _ = chest_volume(np.random.default_rng(8), slices=24, size=160, nodules=3, field_of_view_mm=300.0)
    paths = write_ct_series(tmp_path_factory.mktemp("viewer"), volume, spacing_mm=(2.5, 1.875, 1.875))
    return [("series", (p.name, p.read_bytes(), "application/dicom")) for p in paths]


def _png(encoded: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(encoded))))


def test_a_3d_segmentation_is_every_slice_with_its_overlay_colours_and_measurements(gateway: TestClient, series_files) -> None:
    response = gateway.post(f"/v1/models/{SEG_3D}/predict?format=viewer", files=series_files)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["model"] == SEG_3D and body["task"] == "segmentation-3d"
    assert body["shape"] == [24, 160, 160] and body["stride"] == 1
    assert [s["index"] for s in body["slices"]] == list(range(24))
    assert all(_png(s["png"]).shape == (160, 160, 3) for s in body["slices"])
    assert body["labels"] == [{"value": 1, "label": "nodule", "color": "#e6194b"}]

    served = gateway.post(f"/v1/models/{SEG_3D}/predict?format=rle", files=series_files).json()
    mask = rle.decode(served["masks"]["nodule"])
    per_slice = mask.reshape(len(mask), -1).sum(axis=1)
    assert per_slice.any(), "the phantom's nodules are found"
    assert [s["foreground_voxels"] for s in body["slices"]] == per_slice.tolist()
    assert body["default_slice"] == int(np.argmax(per_slice))
    assert body["measurements"] == served["measurements"]

    # Each slice is the picture format=png draws for it.
    shown = body["default_slice"]
    png = gateway.post(f"/v1/models/{SEG_3D}/predict?format=png&slice={shown}", files=series_files)
    np.testing.assert_array_equal(_png(body["slices"][shown]["png"]), np.asarray(Image.open(io.BytesIO(png.content))))


def test_a_classifier_has_no_viewer_answer(gateway: TestClient, real_ct_files) -> None:
    data = next(iter(real_ct_files.values())).read_bytes()
    response = gateway.post("/v1/models/ct_nodule_classifier/predict?format=viewer", content=data, headers={"Content-Type": "application/dicom"})
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "output_unavailable"
