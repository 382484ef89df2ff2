"""Enhanced multi-frame MR and CT end to end through the real gateway and Triton (issue 14,
item 7): the JSON lists the one instance once and says which frame each slice is; drift
observes one volume per request, counting its frames as export counts them, with spacing and
thickness read from the functional groups on both sides."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import nibabel
import numpy as np
import pydicom
import pytest
from fastapi.testclient import TestClient

from devtools.testdata import pydicom_test_file
from export.data import SourceInfo
from export.drift_reference import GEOMETRY_EDGES, _geometry, header_geometry, volume_slices
from gateway.drift import histogram, psi

pytestmark = pytest.mark.e2e

SEG_3D = "ct_nodule_segmenter_3d"
DICOM = {"Content-Type": "application/dicom"}
#: The geometry features drift compares, by the reference's key.
GEOMETRY = ("slices", "pixel_spacing_mm", "slice_thickness_mm", "rows", "columns")


def _philips_mprage() -> bytes:
    """nibabel's real Philips enhanced MR: one instance, 176 oblique frames of 256 x 256.

    The demo zoo has no MR model, so (0008,0060) Modality is relabelled CT for the CT 3D
    segmenter to take it; everything this module checks — the instance, its frames, its
    functional groups, its oblique geometry — is the real file's."""
    data = gzip.decompress((Path(nibabel.__file__).parent / "nicom" / "tests" / "data" / "philips_mprage.dcm.gz").read_bytes())
    ds = pydicom.dcmread(io.BytesIO(data))
    ds.Modality = "CT"
    buffer = io.BytesIO()
    ds.save_as(buffer)
    return buffer.getvalue()


SOURCES = {
    "eCT_Supplemental": lambda: pydicom_test_file("eCT_Supplemental.dcm").read_bytes(),  # 2 frames of 512 x 512
    "philips_mprage": _philips_mprage,
}


@pytest.fixture(scope="module", params=sorted(SOURCES))
def enhanced(request) -> tuple[bytes, pydicom.Dataset]:
    data = SOURCES[request.param]()
    return data, pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)


def _monitor(gateway: TestClient):
    """The live drift monitor the gateway's catalog keeps for SEG_3D."""
    return gateway.app.state.catalog._monitors[SEG_3D][1]


def test_json_lists_the_multiframe_instance_once_with_the_frame_of_each_slice(gateway: TestClient, enhanced) -> None:
    data, header = enhanced
    frames = int(header.NumberOfFrames)
    response = gateway.post(f"/v1/models/{SEG_3D}/predict", content=data, headers=DICOM)
    assert response.status_code == 200, response.text
    grid = response.json()["grid"]
    assert grid["shape"] == [frames, int(header.Rows), int(header.Columns)]
    assert grid["sop_instance_uids"] == [header.SOPInstanceUID]  # was the one UID once per frame
    assert len(grid["frames"]) == frames
    assert {f["instance"] for f in grid["frames"]} == {0}
    assert sorted(f["frame"] for f in grid["frames"]) == list(range(1, frames + 1))  # every frame once, 1-based
    # slice order is along the normal: the frames' positions (functional groups) increase along it
    per_frame = header.PerFrameFunctionalGroupsSequence
    positions = np.array([per_frame[f["frame"] - 1].PlanePositionSequence[0].ImagePositionPatient for f in grid["frames"]], float)
    affine = np.asarray(grid["affine_lps"])
    along = (positions - affine[:3, 3]) @ (affine[:3, 0] / np.linalg.norm(affine[:3, 0]))
    assert np.all(np.diff(along) > 0)


def test_a_single_frame_series_has_no_frames_field(gateway: TestClient) -> None:
    data = pydicom_test_file("CT_small.dcm").read_bytes()
    grid = gateway.post(f"/v1/models/{SEG_3D}/predict", content=data, headers=DICOM).json()["grid"]
    assert grid["sop_instance_uids"] == [pydicom.dcmread(io.BytesIO(data)).SOPInstanceUID] and grid.get("frames") is None


def test_drift_observes_one_volume_as_export_counts_it(gateway: TestClient, enhanced) -> None:
    """The gateway's own observation of the request against a reference export builds from
    the same file: identical traffic scores PSI 0 on every geometry feature (it was 18.4 on
    ``slices``: 1 file at export, 176 frames at serving), spacing and thickness included."""
    data, header = enhanced
    monitor = _monitor(gateway) if SEG_3D in gateway.app.state.catalog._monitors else None
    before = len(next(iter(monitor._numeric.values())).window) if monitor else 0
    assert gateway.post(f"/v1/models/{SEG_3D}/predict", content=data, headers=DICOM).status_code == 200
    monitor = _monitor(gateway)
    name = next(key for key in monitor._numeric if key.endswith(".slices")).rsplit(".", 1)[0]
    windows = {feature: monitor._numeric[f"{name}.{feature}"] for feature in GEOMETRY}
    assert all(len(w.window) == min(before + 1, w.window.maxlen) for w in windows.values())  # one observation per volume

    spacing, thickness = header_geometry(header)
    assert spacing is not None and thickness is not None  # from the functional groups
    info = SourceInfo(header.Modality, str(header.Manufacturer), int(header.Rows), int(header.Columns), volume_slices([header]), spacing, thickness, None)
    reference = _geometry([info] * 20)  # 20 calibration cases, all this file, as export records them
    for feature, window in windows.items():
        assert window.reference.edges.tolist() == pytest.approx(GEOMETRY_EDGES[feature])
        observed = window.window[-1] * 20  # this request, as 20 identical requests
        assert psi(np.asarray(reference[feature]["counts"], float), observed) == pytest.approx(0.0, abs=1e-9), feature
    served = {"slices": volume_slices([header]), "pixel_spacing_mm": spacing[0], "slice_thickness_mm": thickness}
    for feature, value in served.items():
        assert windows[feature].window[-1].tolist() == histogram(np.array([value]), windows[feature].reference.edges).tolist()
    # counting files instead of frames at export (as before) scores the same traffic 18.4
    files_counted = _geometry([SourceInfo(info.modality, info.manufacturer, info.rows, info.columns, 1, spacing, thickness, None)] * 20)
    assert psi(np.asarray(files_counted["slices"]["counts"], float), windows["slices"].window[-1] * 20) == pytest.approx(18.4, abs=0.05)
