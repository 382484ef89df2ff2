"""``format=sr`` through the gateway and a real Triton: the 3D demo segmenter's findings on a CT
series and the demo classifier's probabilities, as DICOM SR that dciodvfy accepts, that
highdicom reads back equal to the JSON / RLE answers, and that references the SEG the same
request would give."""

from __future__ import annotations

import io

import highdicom as hd
import numpy as np
import pydicom
import pytest
from fastapi.testclient import TestClient
from pydicom.sr.codedict import codes
from scipy import ndimage

from devtools.dicomgen import ct_dataset, write_ct_series
from devtools.phantoms import chest_slice, chest_volume
from gateway.outputs import rle
from devtools.dicom3tools import dciodvfy_errors

SEG_3D = "ct_nodule_segmenter_3d"
CLASSIFIER = "ct_nodule_classifier"
DICOM = {"Content-Type": "application/dicom"}


@pytest.fixture(scope="module")
def series_files(tmp_path_factory):
    volume, _ = chest_volume(np.random.default_rng(8), slices=24, size=192, nodules=3, field_of_view_mm=360.0)
    paths = write_ct_series(tmp_path_factory.mktemp("ct"), volume, spacing_mm=(2.5, 1.875, 1.875))
    return [("series", (p.name, p.read_bytes(), "application/dicom")) for p in paths]


def test_the_3d_segmenters_findings_as_sr_reference_its_seg(gateway: TestClient, series_files, tmp_path) -> None:
    answered = gateway.post(f"/v1/models/{SEG_3D}/predict?format=sr", files=series_files)
    assert answered.status_code == 200, answered.text
    assert answered.headers["content-type"] == "application/dicom"
    assert dciodvfy_errors(answered.content, tmp_path) == []
    seg = pydicom.dcmread(io.BytesIO(gateway.post(f"/v1/models/{SEG_3D}/predict?format=seg", files=series_files).content))
    body = gateway.post(f"/v1/models/{SEG_3D}/predict?format=rle", files=series_files).json()
    mask = rle.decode(body["masks"]["nodule"])
    components, count = ndimage.label(mask, structure=np.ones((3, 3, 3)))
    assert count >= 1
    voxel_ml = np.prod(body["grid"]["spacing_mm"]) / 1000

    sr = hd.sr.srread(io.BytesIO(answered.content))
    groups = sr.content.get_volumetric_roi_measurement_groups()
    assert [g.tracking_identifier for g in groups] == [f"nodule {n}" for n in range(1, count + 1)]
    sizes = sorted(np.bincount(components.ravel())[1:], reverse=True)
    for group, size in zip(groups, sizes):
        (volume,) = group.get_measurements(name=codes.SCT.Volume)
        assert volume.value == pytest.approx(size * voxel_ml)
        assert group.finding_type == codes.SCT.Nodule
        assert group.referenced_segment.referenced_sop_instance_uid == seg.SOPInstanceUID
        assert group.referenced_segment.referenced_segment_numbers == [1]
        assert len(group.get_measurements(name=codes.DCM.AttenuationCoefficient)) == 2  # mean and max HU
    again = hd.sr.srread(io.BytesIO(gateway.post(f"/v1/models/{SEG_3D}/predict?format=sr", files=series_files).content))
    assert (again.SOPInstanceUID, again.SeriesInstanceUID) == (sr.SOPInstanceUID, sr.SeriesInstanceUID)
    assert [g.tracking_uid for g in again.content.get_volumetric_roi_measurement_groups()] == [g.tracking_uid for g in groups]


def test_the_classifiers_probabilities_as_sr(gateway: TestClient, tmp_path) -> None:
    phantom = chest_slice(np.random.default_rng(11), size=512, nodules=1)
    buffer = io.BytesIO()
    ct_dataset(phantom.hu, pixel_spacing_mm=phantom.spacing_mm).save_as(buffer, enforce_file_format=True)
    body = gateway.post(f"/v1/models/{CLASSIFIER}/predict", content=buffer.getvalue(), headers=DICOM).json()
    answered = gateway.post(f"/v1/models/{CLASSIFIER}/predict?format=sr", content=buffer.getvalue(), headers=DICOM)
    assert answered.status_code == 200, answered.text
    assert dciodvfy_errors(answered.content, tmp_path) == []
    groups = hd.sr.srread(io.BytesIO(answered.content)).content.get_image_measurement_groups()
    served = {p["label"]: p["probability"] for p in body["probabilities"]}
    reported = {g.tracking_identifier: g.get_measurements(name=codes.DCM.Probability)[0].value for g in groups}
    assert reported == pytest.approx(served)
    present = [g.tracking_identifier for g in groups if g.get_qualitative_evaluations(name=codes.DCM.PresenceOfProperty)[0].value == codes.DCM.Present]
    assert present == [max(served, key=served.get)]


def test_sr_of_an_enhanced_multiframe_source_is_valid_and_references_it(gateway: TestClient, tmp_path) -> None:
    from devtools.testdata import pydicom_test_file

    data = pydicom_test_file("eCT_Supplemental.dcm").read_bytes()
    answered = gateway.post(f"/v1/models/{SEG_3D}/predict?format=sr", content=data, headers=DICOM)
    assert answered.status_code == 200, answered.text
    assert dciodvfy_errors(answered.content, tmp_path) == []
    sr = pydicom.dcmread(io.BytesIO(answered.content))
    source = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    evidence = {i.ReferencedSOPInstanceUID for s in sr.CurrentRequestedProcedureEvidenceSequence for r in s.ReferencedSeriesSequence for i in r.ReferencedSOPSequence}
    assert source.SOPInstanceUID in evidence


def test_sr_of_a_ct_without_frame_of_reference_is_refused_before_the_model_runs(gateway: TestClient) -> None:
    from devtools.testdata import pydicom_test_file

    ds = pydicom.dcmread(pydicom_test_file("CT_small.dcm"))
    del ds.FrameOfReferenceUID
    buffer = io.BytesIO()
    ds.save_as(buffer)
    answered = gateway.post(f"/v1/models/{SEG_3D}/predict?format=sr", content=buffer.getvalue(), headers=DICOM)
    assert answered.status_code == 422, answered.text
    assert answered.json()["code"] == "output_unavailable"
    assert "Frame of Reference UID" in answered.json()["message"]
