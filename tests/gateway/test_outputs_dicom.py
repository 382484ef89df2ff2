"""DICOM SEG (validated with dciodvfy), NIfTI and regridding of masks to the source grid."""

from __future__ import annotations

import gzip
import io

import nibabel as nib
import numpy as np
import pydicom
import pytest

from gateway.outputs.nifti import nifti_labels
from postprocessing.regrid import labels_to_grid
from gateway.outputs.seg import segmentation
from preprocessing import plan_series
from devtools.dicomgen import write_ct_series
from devtools.phantoms import chest_volume
from devtools.dicom3tools import dciodvfy_errors


@pytest.fixture(scope="module")
def ct_series(tmp_path_factory):
    volume, mask = chest_volume(np.random.default_rng(0), 6, size=64, nodules=2)
    paths = write_ct_series(tmp_path_factory.mktemp("ct"), volume, spacing_mm=(2.5, 1.4, 1.4))
    return [pydicom.dcmread(p) for p in paths], mask.astype(np.uint8)


def _frames(datasets):
    """The series' frames in slice order, as the gateway hands them to the SEG writer."""
    frames = plan_series(datasets).frames
    assert [f.header.SOPInstanceUID for f in frames] == [ds.SOPInstanceUID for ds in datasets]  # written in slice order
    return frames


def test_seg_passes_dciodvfy_and_references_every_source(ct_series, tmp_path) -> None:
    datasets, mask = ct_series
    path = tmp_path / "seg.dcm"
    path.write_bytes(segmentation(_frames(datasets), mask, ["background", "nodule"], "nodule_seg", "1"))

    assert dciodvfy_errors(path, tmp_path) == []

    seg = pydicom.dcmread(path)
    assert seg.SOPClassUID == pydicom.uid.SegmentationStorage
    assert seg.SegmentSequence[0].SegmentLabel == "nodule"
    assert seg.SegmentSequence[0].SegmentedPropertyTypeCodeSequence[0].CodeMeaning == "Nodule"
    referenced = {item.ReferencedSOPInstanceUID for item in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    assert referenced == {ds.SOPInstanceUID for ds in datasets}
    assert seg.StudyInstanceUID == datasets[0].StudyInstanceUID
    assert "PatientName" in seg and str(seg.PatientName) == str(datasets[0].PatientName)  # same patient, as SEG requires


def test_seg_frames_lie_on_their_source_slices(ct_series) -> None:
    datasets, mask = ct_series
    seg = pydicom.dcmread(io.BytesIO(segmentation(_frames(datasets), mask, ["background", "nodule"], "m", "1")))
    positions = {tuple(round(float(v), 3) for v in ds.ImagePositionPatient): k for k, ds in enumerate(datasets)}
    frames = seg.pixel_array.reshape(-1, *mask.shape[1:])
    for frame, item in zip(frames, seg.PerFrameFunctionalGroupsSequence):
        position = tuple(round(float(v), 3) for v in item.PlanePositionSequence[0].ImagePositionPatient)
        np.testing.assert_array_equal(frame, mask[positions[position]])


def test_nifti_affine_places_voxels_where_dicom_does(ct_series) -> None:
    datasets, mask = ct_series
    first = datasets[0]
    affine_lps = np.eye(4)
    affine_lps[:3, 0] = [0, 0, 2.5]  # slices step along +z
    affine_lps[:3, 1] = [0, 1.4, 0]  # rows step along +y (posterior)
    affine_lps[:3, 2] = [1.4, 0, 0]  # columns step along +x (left)
    affine_lps[:3, 3] = [float(v) for v in first.ImagePositionPatient]

    image = nib.Nifti1Image.from_bytes(gzip.decompress(nifti_labels(mask, affine_lps)))
    data = np.asarray(image.dataobj)
    assert data.shape == (mask.shape[2], mask.shape[1], mask.shape[0])  # column, row, slice
    d, h, w = 3, 10, 20
    assert data[w, h, d] == mask[d, h, w]
    ras = image.affine @ [w, h, d, 1]
    lps = affine_lps @ [d, h, w, 1]
    np.testing.assert_allclose(ras[:3], [-lps[0], -lps[1], lps[2]])
    assert nib.aff2axcodes(image.affine) == ("L", "P", "S")  # columns → left, rows → posterior, slices → superior


def test_regrid_undoes_a_resample_and_crop() -> None:
    source_affine = np.diag([2.0, 1.0, 1.0, 1.0])
    source = np.zeros((10, 40, 40), dtype=np.uint8)
    source[4:7, 10:20, 10:20] = 1
    # the model saw every 2nd row/column starting at (row 4, col 4): a 2 mm in-plane grid
    model_affine = source_affine.copy()
    model_affine[:3, 1] *= 2
    model_affine[:3, 2] *= 2
    model_affine[:3, 3] = [0.0, 4.0, 4.0]
    model_labels = source[:, 4::2, 4::2]
    back = labels_to_grid(model_labels, model_affine, source_affine, source.shape)
    assert back.shape == source.shape
    assert back[:, :4, :].sum() == 0  # outside the model's field of view
    inside = back[4:7, 10:20, 10:20]
    assert inside.mean() > 0.8
    assert back.sum() == pytest.approx(source.sum(), rel=0.25)
