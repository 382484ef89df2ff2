"""Every way a hospital system sends DICOM reaches the model: one instance, STOW-RS
multipart/related (encoded by the real dicomweb-client), multipart/form-data and ZIP."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from dicomweb_client.api import DICOMwebClient
from fastapi.testclient import TestClient

from medserve.dicomgen import write_ct_series
from medserve.phantoms import chest_volume

MODEL = "ct_nodule_classifier"


@pytest.fixture(scope="module")
def series_files(tmp_path_factory) -> list:
    volume, _ = chest_volume(np.random.default_rng(5), slices=3, size=256, nodules=1)
    return write_ct_series(tmp_path_factory.mktemp("series"), volume, spacing_mm=(2.5, 1.4, 1.4))


def _stow_body(files) -> tuple[bytes, str]:
    """The exact body and Content-Type that dicomweb-client's STOW-RS store_instances sends."""
    content_type = 'multipart/related; type="application/dicom"; boundary="0f3cf5c0-70e0-41ef-baef-c6f9f65ec3e1"'
    client = DICOMwebClient(url="http://unused.invalid")
    return client._encode_multipart_message([f.read_bytes() for f in files], content_type), content_type


def _assert_per_instance(response, files) -> None:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["top_label"] is None and body["probabilities"] is None
    import pydicom

    expected = {pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in files}
    assert {i["sop_instance_uid"] for i in body["instances"]} == expected
    for instance in body["instances"]:
        assert sum(p["probability"] for p in instance["probabilities"]) == pytest.approx(1.0, abs=1e-5)


def test_stow_rs_multipart_related(gateway: TestClient, series_files) -> None:
    body, content_type = _stow_body(series_files)
    _assert_per_instance(gateway.post(f"/v1/models/{MODEL}/predict", content=body, headers={"Content-Type": content_type}), series_files)


def test_multipart_form_data(gateway: TestClient, series_files) -> None:
    files = [("image", (f.name, f.read_bytes(), "application/dicom")) for f in series_files]
    _assert_per_instance(gateway.post(f"/v1/models/{MODEL}/predict", files=files, data={"note": "ignored form field"}), series_files)


def test_zip_of_a_series(gateway: TestClient, series_files) -> None:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as handle:
        for f in series_files:
            handle.write(f, f"study/series/{f.name}")
        handle.writestr("README.txt", "not DICOM, skipped")
    response = gateway.post(f"/v1/models/{MODEL}/predict", content=archive.getvalue(), headers={"Content-Type": "application/zip"})
    _assert_per_instance(response, series_files)


def test_same_instance_gives_same_answer_in_every_envelope(gateway: TestClient, series_files) -> None:
    single = gateway.post(f"/v1/models/{MODEL}/predict", content=series_files[0].read_bytes(), headers={"Content-Type": "application/dicom"}).json()
    body, content_type = _stow_body(series_files)
    multi = gateway.post(f"/v1/models/{MODEL}/predict", content=body, headers={"Content-Type": content_type}).json()
    import pydicom

    uid = pydicom.dcmread(series_files[0], stop_before_pixels=True).SOPInstanceUID
    [same] = [i for i in multi["instances"] if i["sop_instance_uid"] == uid]
    assert same["probabilities"][0]["label"] == single["top_label"]
    assert same["probabilities"][0]["probability"] == pytest.approx(single["probabilities"][0]["probability"], abs=1e-6)


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (b"PK\x03\x04 not really a zip", "application/zip", 400, "invalid_upload"),  # corrupt ZIP
        (b"--b\r\nContent-Type: application/dicom\r\n\r\nxx", 'multipart/related; type="application/dicom"', 400, "invalid_upload"),  # no boundary
        (b"x", 'multipart/related; type="image/jpeg"; boundary=b', 415, "unsupported_media_type"),  # not DICOM parts
        (b"--b--\r\n", 'multipart/related; type="application/dicom"; boundary=b', 400, "empty_body"),  # no parts
    ],
)
def test_malformed_envelopes(gateway: TestClient, body: bytes, content_type: str, status: int, code: str) -> None:
    response = gateway.post(f"/v1/models/{MODEL}/predict", content=body, headers={"Content-Type": content_type})
    assert response.status_code == status, response.text
    assert response.json()["code"] == code


def test_a_bad_instance_inside_a_series_is_a_clear_400(gateway: TestClient, series_files) -> None:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as handle:
        handle.write(series_files[0], "ok.dcm")
        handle.writestr("broken.dcm", b"\0" * 128 + b"DICM" + b"\x02\x00")
    response = gateway.post(f"/v1/models/{MODEL}/predict", content=archive.getvalue(), headers={"Content-Type": "application/zip"})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_dicom"
