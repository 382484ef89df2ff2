"""Class-activation heatmaps for classifiers exported with an activation-map output."""

from __future__ import annotations

import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from scipy import ndimage

from devtools.dicomgen import ct_dataset
from devtools.phantoms import chest_slice

CAM = "ct_nodule_classifier_cam"
DICOM = {"Content-Type": "application/dicom"}


@pytest.fixture(scope="module")
def nodule_slice():
    phantom = chest_slice(np.random.default_rng(7), size=512, nodules=1)  # the `make run` demo slice
    buffer = io.BytesIO()
    ct_dataset(phantom.hu, pixel_spacing_mm=phantom.spacing_mm).save_as(buffer, enforce_file_format=True)
    return phantom, buffer.getvalue()


def _heat(png: bytes) -> np.ndarray:
    """Red minus blue of the overlay: hot regions are red, cold ones blue-grey."""
    rgb = np.asarray(Image.open(io.BytesIO(png))).astype(np.float32)
    return rgb[..., 0] - rgb[..., 2]


def test_heatmap_is_the_models_activation_map_over_the_source(gateway: TestClient, nodule_slice, model_repository) -> None:
    import onnxruntime as ort

    from preprocessing import PreprocessingSpec, preprocess_instance, read_dataset

    phantom, data = nodule_slice
    response = gateway.post(f"/v1/models/{CAM}/predict?format=heatmap", content=data, headers=DICOM)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    heat = _heat(response.content)
    assert heat.shape == phantom.hu.shape

    # Independently: the ONNX model's activation map, linearly upsampled to the source pixels.
    spec = PreprocessingSpec.from_dict(gateway.get(f"/v1/models/{CAM}").json()["preprocessing"])
    session = ort.InferenceSession(str(model_repository / CAM / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    _, activation = session.run(None, {"image": preprocess_instance(read_dataset(data), spec).array[None]})
    expected = np.clip(ndimage.zoom(activation[0], 512 / activation.shape[-1], order=1, mode="nearest", grid_mode=True), 0, 1)
    # the overlay's red minus blue is alpha * 255 * h * (2h - 1) for heat h (gateway.outputs.overlay, alpha 0.5)
    np.testing.assert_allclose(heat, 0.5 * 255 * expected * (2 * expected - 1), atol=2.0)

    # The evidence lies in the hemithorax that holds the nodule (the 4x4 map is coarse).
    nodule_column = ndimage.center_of_mass(phantom.nodule_mask)[1]
    halves = (heat[:, :256].mean(), heat[:, 256:].mean())
    assert halves[int(nodule_column >= 256)] > halves[int(nodule_column < 256)]


def test_accept_png_gives_the_heatmap(gateway: TestClient, nodule_slice) -> None:
    _, data = nodule_slice
    by_format = gateway.post(f"/v1/models/{CAM}/predict?format=heatmap", content=data, headers=DICOM)
    by_accept = gateway.post(f"/v1/models/{CAM}/predict", content=data, headers={**DICOM, "Accept": "image/png"})
    assert by_accept.status_code == 200
    assert by_accept.content == by_format.content


def test_same_weights_same_probabilities(gateway: TestClient, nodule_slice) -> None:
    _, data = nodule_slice
    explained = gateway.post(f"/v1/models/{CAM}/predict", content=data, headers=DICOM).json()
    plain = gateway.post("/v1/models/ct_nodule_classifier/predict", content=data, headers=DICOM).json()
    assert explained["top_label"] == plain["top_label"] == "nodule"
    assert explained["probabilities"][0]["probability"] == pytest.approx(plain["probabilities"][0]["probability"], abs=1e-5)


def test_a_classifier_without_activation_map_has_no_heatmap(gateway: TestClient, nodule_slice) -> None:
    _, data = nodule_slice
    response = gateway.post("/v1/models/ct_nodule_classifier/predict?format=heatmap", content=data, headers=DICOM)
    assert response.status_code == 422
    assert response.json()["code"] == "output_unavailable"
