"""What an output format needs of its sources is checked before the model runs, and real
inputs that used to end in a 500 get a valid answer or a documented 4xx."""

from __future__ import annotations

import io
import shutil
import subprocess

import numpy as np
import pydicom
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from devtools.testdata import pydicom_test_file

pytestmark = pytest.mark.e2e

SEG_2D = "ct_nodule_segmenter"
SEG_3D = "ct_nodule_segmenter_3d"
DICOM = {"Content-Type": "application/dicom"}


def _inferences(gateway: TestClient, model: str) -> float:
    """How many times the gateway timed an inference stage for ``model`` (its /metrics)."""
    prefix = f'medserve_stage_duration_seconds_count{{model="{model}",stage="infer"}} '
    line = next((l for l in gateway.get("/metrics").text.splitlines() if l.startswith(prefix)), prefix + "0")
    return float(line.rsplit(" ", 1)[1])


def _dciodvfy_errors(data: bytes, tmp_path) -> list[str]:
    path = tmp_path / "out.dcm"
    path.write_bytes(data)
    report = subprocess.run([shutil.which("dciodvfy") or "dciodvfy", str(path)], capture_output=True, text=True)
    return [line for line in (report.stdout + report.stderr).splitlines() if line.startswith("Error")]


def _edited(name: str, **values: object) -> bytes:
    ds = pydicom.dcmread(pydicom_test_file(name))
    for keyword, value in values.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    buffer = io.BytesIO()
    ds.save_as(buffer)
    return buffer.getvalue()


def test_seg_of_a_ct_without_frame_of_reference_is_refused_before_the_model_runs(gateway: TestClient) -> None:
    data = pydicom_test_file("693_UNCI.dcm").read_bytes()  # a real CT without (0020,0052): was a 500
    before = _inferences(gateway, SEG_2D)
    response = gateway.post(f"/v1/models/{SEG_2D}/predict?format=seg", content=data, headers=DICOM)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "output_unavailable"
    assert "(0020,0052) Frame of Reference UID" in response.json()["message"]
    assert _inferences(gateway, SEG_2D) == before
    # the same image is still segmented when the format needs no Frame of Reference
    assert gateway.post(f"/v1/models/{SEG_2D}/predict?format=nifti", content=data, headers=DICOM).status_code == 200


@pytest.mark.parametrize(
    "values",
    [
        {"PatientBirthDate": "19xx-01"},  # not a DA: highdicom refused to copy it (500)
        {"SpecificCharacterSet": "ISO_IR 999"},  # unknown repertoire (500)
        {"StudyDate": "abc", "StudyTime": "noon"},
        {"PatientSex": "Q"},  # outside M / F / O
    ],
    ids=["birth_date", "charset", "study_date_time", "sex"],
)
def test_seg_of_a_source_with_malformed_patient_or_study_values_is_valid(gateway: TestClient, tmp_path, values) -> None:
    response = gateway.post(f"/v1/models/{SEG_2D}/predict?format=seg", content=_edited("CT_small.dcm", **values), headers=DICOM)
    assert response.status_code == 200, response.text
    assert _dciodvfy_errors(response.content, tmp_path) == []
    seg = pydicom.dcmread(io.BytesIO(response.content))
    assert seg.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4"


@pytest.fixture(scope="module")
def enhanced_ct() -> bytes:
    """pydicom-data's Enhanced CT: one instance, 2 frames of 512 x 512, geometry in functional groups."""
    return pydicom_test_file("eCT_Supplemental.dcm").read_bytes()


def test_seg_of_an_enhanced_multiframe_source_references_that_one_instance(gateway: TestClient, enhanced_ct, tmp_path) -> None:
    response = gateway.post(f"/v1/models/{SEG_3D}/predict?format=seg", content=enhanced_ct, headers=DICOM)
    assert response.status_code == 200, response.text
    assert _dciodvfy_errors(response.content, tmp_path) == []
    seg = pydicom.dcmread(io.BytesIO(response.content))
    source = pydicom.dcmread(io.BytesIO(enhanced_ct), stop_before_pixels=True)
    referenced = seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence
    assert [item.ReferencedSOPInstanceUID for item in referenced] == [source.SOPInstanceUID]


def test_png_overlay_of_a_multiframe_source_shows_one_of_its_frames(gateway: TestClient, enhanced_ct) -> None:
    for index in (0, 1):
        response = gateway.post(f"/v1/models/{SEG_3D}/predict?format=png&slice={index}", content=enhanced_ct, headers=DICOM)
        assert response.status_code == 200, response.text
        assert response.headers["X-Slice-Index"] == str(index)
        assert Image.open(io.BytesIO(response.content)).size == (512, 512)
    json_answer = gateway.post(f"/v1/models/{SEG_3D}/predict", content=enhanced_ct, headers=DICOM).json()
    assert json_answer["grid"]["shape"] == [2, 512, 512]
    assert np.isfinite(json_answer["grid"]["affine_lps"]).all()
