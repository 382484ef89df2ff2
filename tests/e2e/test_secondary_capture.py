"""``format=sc`` through the gateway and a real Triton: the 3D demo segmenter's result on a CT
series as a Secondary Capture a PACS files into the source's study."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from devtools.dicomgen import write_ct_series
from devtools.phantoms import chest_volume
from devtools.dicom3tools import dciodvfy_errors

pytestmark = pytest.mark.e2e

SEG_3D = "ct_nodule_segmenter_3d"


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    """A 24-slice chest CT series (96², 2 mm slices) with nodules, as upload parts."""
    volume, _ = chest_volume(np.random.default_rng(12), slices=24, size=96, nodules=2)
    paths = write_ct_series(tmp_path_factory.mktemp("series"), volume, spacing_mm=(2.0, 2.0, 2.0))
    return [pydicom.dcmread(p) for p in paths], [("series", (p.name, p.read_bytes(), "application/dicom")) for p in paths]


def _inferences(gateway: TestClient, model: str) -> float:
    prefix = f'medserve_stage_duration_seconds_count{{model="{model}",stage="infer"}} '
    line = next((l for l in gateway.get("/metrics").text.splitlines() if l.startswith(prefix)), prefix + "0")
    return float(line.rsplit(" ", 1)[1])


def test_a_series_segmented_in_3d_comes_back_as_a_valid_capture_in_its_study(gateway: TestClient, series, tmp_path) -> None:
    datasets, files = series
    response = gateway.post(f"/v1/models/{SEG_3D}/predict?format=sc", files=files)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/dicom"
    path = tmp_path / "sc.dcm"
    path.write_bytes(response.content)
    assert dciodvfy_errors(path, tmp_path) == []

    capture = pydicom.dcmread(path)
    index = int(response.headers["X-Slice-Index"])
    by_uid = {ds.SOPInstanceUID: ds for ds in datasets}
    source = by_uid[capture.SourceImageSequence[0].ReferencedSOPInstanceUID]
    assert (capture.StudyInstanceUID, capture.PatientID) == (source.StudyInstanceUID, source.PatientID)
    assert capture.BurnedInAnnotation == "YES" and "nodule" in capture.ImageComments

    # The very pixels of format=png for the same slice, and a foreground the model found there.
    picture = gateway.post(f"/v1/models/{SEG_3D}/predict?format=png&slice={index}", files=files)
    assert picture.status_code == 200, picture.text
    pixels = capture.pixel_array
    np.testing.assert_array_equal(pixels, np.asarray(Image.open(io.BytesIO(picture.content))))
    assert (pixels[..., 0] != pixels[..., 1]).any()  # coloured somewhere: the mask is drawn

    again = pydicom.dcmread(io.BytesIO(gateway.post(f"/v1/models/{SEG_3D}/predict?format=sc", files=files).content))
    assert (again.SeriesInstanceUID, again.SOPInstanceUID) == (capture.SeriesInstanceUID, capture.SOPInstanceUID)


def test_a_series_without_study_uids_is_refused_before_the_model_runs(gateway: TestClient, series) -> None:
    datasets, _ = series
    files = []
    for ds in datasets:
        edited = ds.copy()
        del edited.StudyInstanceUID
        buffer = io.BytesIO()
        edited.save_as(buffer, enforce_file_format=True)
        files.append(("series", ("x.dcm", buffer.getvalue(), "application/dicom")))
    before = _inferences(gateway, SEG_3D)
    response = gateway.post(f"/v1/models/{SEG_3D}/predict?format=sc", files=files)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "output_unavailable"
    assert "(0020,000D) Study Instance UID" in response.json()["message"]
    assert _inferences(gateway, SEG_3D) == before
