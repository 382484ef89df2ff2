"""The third-party harness: a real brain MR in a real Philips enhanced header, a pydicom-only
NIfTI of it (checked against nibabel's own DICOM reader), and deepbet's own pipeline on it."""

from __future__ import annotations

import warnings
import zipfile

import cc3d
import numpy as np
import pydicom
import pytest
from pydicom.uid import MRImageStorage

from devtools.thirdparty.brain_mr import DICOM_UID_ROOT, read_philips_header, write_brain_mr, write_brain_series
from devtools.thirdparty.deepbet_reference import deepbet_mask, deepbet_reference, deepbet_weights
from devtools.thirdparty.dicom_nifti import read_volume
from devtools.thirdparty.geometry import enhanced_geometry

ENHANCED_MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4.1"
FRAMES, ROWS, COLUMNS = 176, 256, 256


@pytest.fixture(scope="module")
def enhanced(tmp_path_factory):
    return write_brain_mr(tmp_path_factory.mktemp("enhanced") / "brain.dcm")


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    return write_brain_series(tmp_path_factory.mktemp("series"))


@pytest.fixture(scope="module")
def reference(enhanced):
    return deepbet_reference(enhanced)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


def test_enhanced_file_keeps_the_philips_header_and_geometry_with_new_uids(enhanced) -> None:
    ds, philips = pydicom.dcmread(enhanced), read_philips_header()
    assert ds.SOPClassUID == ENHANCED_MR_IMAGE_STORAGE
    assert (ds.Manufacturer, ds.ManufacturerModelName) == (philips.Manufacturer, philips.ManufacturerModelName)
    assert int(ds.NumberOfFrames) == FRAMES and (ds.Rows, ds.Columns) == (ROWS, COLUMNS)
    written, original = enhanced_geometry(ds), enhanced_geometry(philips)
    for field in ("position_mm", "row_cosine", "column_cosine", "spacing_mm", "thickness_mm"):
        np.testing.assert_array_equal(getattr(written, field), getattr(original, field))
    for uid in ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID"):
        assert ds[uid].value != philips[uid].value and not ds[uid].value.startswith(DICOM_UID_ROOT)
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID


def test_enhanced_file_holds_a_brain_in_a_real_mr_range(enhanced) -> None:
    ds = pydicom.dcmread(enhanced)
    assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation) == (16, 12, 11, 0)
    pixels = ds.pixel_array
    assert pixels.shape == (FRAMES, ROWS, COLUMNS) and pixels.dtype == np.uint16
    assert 900 <= pixels.max() < 1 << 12
    brain = pixels > 0
    assert 1.6e6 < brain.sum() < 2.2e6  # voxels of 1 mm³: an adult brain's 1.6 to 2.2 L
    mid_sagittal = brain[FRAMES // 2]
    assert mid_sagittal[ROWS // 2, COLUMNS // 2]  # the template's centre on the volume's centre
    voi = ds.PerFrameFunctionalGroupsSequence[0].FrameVOILUTSequence[0]  # a window on the brain
    assert float(voi.WindowWidth) == pytest.approx(pixels.max() * float(
        ds.PerFrameFunctionalGroupsSequence[0].PixelValueTransformationSequence[0].RescaleSlope), abs=0.01)


def test_classic_series_holds_the_same_volume_as_the_enhanced_file(enhanced, series) -> None:
    datasets = [pydicom.dcmread(p) for p in series]
    assert len(datasets) == FRAMES
    assert {d.SOPClassUID for d in datasets} == {MRImageStorage}
    assert [int(d.InstanceNumber) for d in datasets] == list(range(1, FRAMES + 1))
    enhanced_ds = pydicom.dcmread(enhanced)
    assert len({d.SeriesInstanceUID for d in datasets}) == 1
    assert datasets[0].SeriesInstanceUID != enhanced_ds.SeriesInstanceUID
    from_series, from_enhanced = read_volume(series), read_volume(enhanced)
    np.testing.assert_array_equal(from_series.pixels, from_enhanced.pixels)
    np.testing.assert_array_equal(from_series.nifti().affine, from_enhanced.nifti().affine)


def test_nifti_affine_is_the_one_nibabels_dicom_reader_gives(series) -> None:
    """nibabel's wrapper indexes (row, column, slice) with its slice axis along column cosine ×
    row cosine, the opposite of DICOM's normal; ours indexes (column, row, slice along the normal)."""
    with warnings.catch_warnings():  # importing nibabel.nicom warns its readers are experimental
        warnings.simplefilter("ignore", UserWarning)
        from nibabel.nicom import dicomwrappers

    volume = read_volume(series)
    first = series[volume.slice_order()[0]]
    ours_from_nibabels = np.array([[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, -1, 0], [0, 0, 0, 1]], dtype=float)
    nibabel_affine = dicomwrappers.wrapper_from_file(str(first)).affine
    np.testing.assert_allclose(volume.affine_lps(), nibabel_affine @ ours_from_nibabels, atol=1e-4)
    np.testing.assert_allclose(volume.nifti().affine, np.diag([-1, -1, 1, 1]) @ volume.affine_lps())


def test_frames_are_stored_along_the_normal_and_the_nifti_round_trips(enhanced) -> None:
    volume = read_volume(enhanced)
    np.testing.assert_array_equal(volume.slice_order(), np.arange(FRAMES))
    np.testing.assert_array_equal(volume.to_source_order(volume.nifti().get_fdata(dtype=np.float32)), volume.pixels)


def test_deepbet_weights_are_the_two_torchscript_archives_of_its_wheel() -> None:
    bbox_model, model = deepbet_weights()
    assert (bbox_model.name, model.name) == ("bbox_model.pt", "model.pt")
    for path in (bbox_model, model):
        with zipfile.ZipFile(path) as archive:  # TorchScript: a zip with the code and constants
            assert any(name.endswith("constants.pkl") for name in archive.namelist())


def test_deepbet_finds_one_plausible_brain_where_the_brain_is(reference) -> None:
    mask = reference.mask
    assert mask.shape == (FRAMES, ROWS, COLUMNS) and mask.dtype == np.uint8
    assert set(np.unique(mask)) == {0, 1}
    assert 1000 < reference.tiv_ml < 2000
    # voxels of 1 mm³, to the 1.4e-6 by which the frames' positions are not exactly 1 mm apart
    assert reference.tiv_ml == pytest.approx(mask.sum() * 1e-3, rel=1e-5)
    assert cc3d.connected_components(mask).max() == 1
    assert _dice(mask.astype(bool), reference.volume.pixels > 0) > 0.95
    np.testing.assert_array_equal(reference.mask_in_slice_order(), mask[reference.volume.slice_order()])


def test_series_and_enhanced_file_give_the_same_reference_mask(reference, series) -> None:
    np.testing.assert_array_equal(deepbet_mask(series), reference.mask)
