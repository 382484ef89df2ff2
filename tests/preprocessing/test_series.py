"""Series assembly against SimpleITK (GDCM's IPP sorter) and nibabel on the same data: order,
spacing, affine and voxel values; and every way a set of instances can fail to be a volume."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, RLELossless

from devtools import testdata
from preprocessing import (
    InconsistentSeries,
    MissingPixelData,
    PreprocessingSpec,
    assemble_series,
    group_series,
    plan_series,
    preprocess_series,
)
from preprocessing.geometry import index_map_affine, reorientation

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
OBLIQUE = (0.8660254, 0.5, 0.0, 0.0, 0.0, -1.0)  # sagittal-ish, rotated 30° about z


def _phantom(rng, slices=6, rows=20, columns=24):
    return np.rint(rng.uniform(-1000, 1500, size=(slices, rows, columns))).astype(np.float32)


def _voxel_positions(affine, shape):
    """LPS position of every voxel center, (N, 3), in C order."""
    index = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).reshape(-1, 3)
    return index @ affine[:3, :3].T + affine[:3, 3]


class TestAgainstSimpleITK:
    @pytest.mark.parametrize(
        "orientation",
        [
            AXIAL,  # slices feet→head
            testdata.SAGITTAL_ORIENTATION,  # normal toward patient right
            testdata.CORONAL_ORIENTATION,  # normal toward anterior
            OBLIQUE,  # oblique: no axis-aligned cosine
        ],
    )
    def test_shuffled_series_order_affine_and_values(self, rng, write_series, sitk_reference, orientation):
        hu = _phantom(rng)
        folder = write_series(
            testdata.ct_series(hu, pixel_spacing_mm=(0.8, 0.9), distances_mm=np.arange(6) * 2.5, orientation=orientation)
        )
        series = assemble_series(sorted(folder.iterdir()))
        volume, affine, _ = sitk_reference(folder)
        np.testing.assert_array_equal(series.volume, volume)
        np.testing.assert_allclose(series.affine_lps, affine, atol=1e-9)
        np.testing.assert_array_equal(series.volume, hu)
        assert series.spacing_mm == pytest.approx((2.5, 0.8, 0.9))

    @pytest.mark.parametrize(
        "orientation",
        [
            AXIAL,  # already SPL
            testdata.SAGITTAL_ORIENTATION,  # permuted and flipped
            testdata.CORONAL_ORIENTATION,  # permuted
            OBLIQUE,  # closest axes
        ],
    )
    def test_reorientation_equals_dicom_orient(self, rng, write_series, sitk_reference, sitk_affine, orientation):
        import SimpleITK as sitk

        hu = _phantom(rng)
        folder = write_series(
            testdata.ct_series(hu, pixel_spacing_mm=(0.8, 0.9), distances_mm=np.arange(6) * 2.5, orientation=orientation)
        )
        series = assemble_series(sorted(folder.iterdir()))
        turn = reorientation(series.affine_lps, "SPL")
        _, _, image = sitk_reference(folder)
        oriented = sitk.DICOMOrient(image, "LPS")  # ITK names (x, y, z) = our (w, h, d)
        np.testing.assert_array_equal(turn.apply(series.volume), sitk.GetArrayFromImage(oriented))
        np.testing.assert_allclose(turn.apply_affine(series.affine_lps, series.volume.shape), sitk_affine(oriented), atol=1e-9)

    def test_real_ct_series_sorted_by_position_not_instance_number(self, dicomdir_series, sitk_reference):
        paths = dicomdir_series("98892001/CT5N")
        plan = plan_series(paths)
        numbers = [int(f.instance.header.InstanceNumber) for f in plan.frames]
        assert numbers == [10, 9, 8, 7, 6]  # instance numbers run head→feet; slices are sorted feet→head
        series = assemble_series(paths)
        volume, affine, _ = sitk_reference(paths[0].parent)
        np.testing.assert_allclose(series.affine_lps, affine, atol=1e-6)
        assert series.spacing_mm == pytest.approx((2.5, 0.488281, 0.488281))
        np.testing.assert_array_equal(series.volume, volume)

    def test_real_oblique_mr_pair(self, real_file, write_series, sitk_reference):
        """nibabel's two Siemens slices: tilted 0.3° about x, 3 mm apart — but their positions
        step along z only, a 0.016 mm shear that SimpleITK's normal-based affine drops and
        ours keeps, so that each slice lands exactly on its (0020,0032)."""
        first, second = real_file("nibabel", "nicom/tests/data/0.dcm"), real_file("nibabel", "nicom/tests/data/1.dcm")
        series = assemble_series([second.data, first.data])
        folder = write_series([first.dataset(), second.dataset()])
        volume, affine, _ = sitk_reference(folder)
        np.testing.assert_array_equal(series.volume, volume)
        np.testing.assert_allclose(series.affine_lps, affine, atol=0.02)
        for k, source in enumerate((first, second)):
            np.testing.assert_allclose(series.affine_lps @ [k, 0, 0, 1], [*source.dataset().ImagePositionPatient, 1], atol=1e-9)
        assert series.spacing_mm[0] == pytest.approx(3.0, abs=1e-4)
        assert series.warnings == ()

    def test_real_rt_dose_frames_placed_by_grid_frame_offset_vector(self, real_file, sitk_reference):
        dose = real_file("pydicom", "rtdose.dcm")
        series = assemble_series([dose.data])
        volume, affine, _ = sitk_reference(dose.path)
        np.testing.assert_allclose(series.affine_lps, affine, atol=1e-9)
        np.testing.assert_array_equal(series.volume, volume)

    def test_real_enhanced_ct_frames_sorted_along_the_normal(self, real_file, sitk_reference):
        """eCT_Supplemental's normal (row × column cosines) points to -z, so our slice 0 is its
        second frame; GDCM keeps the stored order. Both describe the same voxels in space."""
        ct = real_file("pydicom-data", "eCT_Supplemental.dcm")
        series = assemble_series([ct.data])
        volume, affine, _ = sitk_reference(ct.path)
        assert series.orientation[0] == "I"
        mine = _voxel_positions(series.affine_lps, series.volume.shape)
        theirs = _voxel_positions(affine, volume.shape)
        order_mine, order_theirs = np.lexsort(mine.T), np.lexsort(theirs.T)
        np.testing.assert_allclose(mine[order_mine], theirs[order_theirs], atol=1e-6)
        np.testing.assert_array_equal(series.volume.reshape(-1)[order_mine], volume.reshape(-1)[order_theirs])


class TestAgainstNibabel:
    def test_philips_enhanced_mr_geometry(self, real_file):
        from nibabel.nicom import dicomwrappers

        mprage = real_file("nibabel", "nicom/tests/data/philips_mprage.dcm.gz")
        wrapper = dicomwrappers.wrapper_from_data(mprage.dataset())
        series = assemble_series([mprage.data])
        assert series.volume.shape == (176, 256, 256)
        # nibabel indexes (row, column, slice) and stacks the slices the other way round.
        theirs = index_map_affine(wrapper.affine[:, [2, 0, 1, 3]], 0, 175, -1.0)
        np.testing.assert_allclose(series.affine_lps[:3, :3], theirs[:3, :3], atol=1e-5)
        np.testing.assert_allclose(series.affine_lps[:3, 3], theirs[:3, 3], atol=5e-3)
        positions = [f.PlanePositionSequence[0].ImagePositionPatient for f in mprage.dataset().PerFrameFunctionalGroupsSequence]
        np.testing.assert_allclose(
            series.affine_lps[:3, :3] @ np.array([[k, 0, 0] for k in range(176)]).T + series.affine_lps[:3, 3:],
            np.asarray(positions, dtype=float).T,
            atol=5e-3,  # the file's positions lie on a line to within 1.3 µm
        )

    def test_slice_order_follows_nibabel_slice_indicator(self, real_file):
        from nibabel.nicom import dicomwrappers

        slices = [real_file("nibabel", f"nicom/tests/data/{n}.dcm") for n in (1, 0)]
        plan = plan_series([s.data for s in slices])
        indicators = [dicomwrappers.wrapper_from_data(f.instance.header).slice_indicator for f in plan.frames]
        assert indicators == sorted(indicators)
        np.testing.assert_allclose(plan.slice_positions_mm, indicators, atol=1e-4)


@pytest.mark.parametrize(
    ("folder", "error", "pattern"),
    [
        ("98892001/CT2N", InconsistentSeries, r"2 differently oriented planes \(sagittal"),  # sagittal + coronal localizer
        ("98892003/MR700", InconsistentSeries, r"7 differently oriented planes"),  # radial MR series
        ("98892003/MR1", InconsistentSeries, r"belong to 3 series \(1, 1, 1 instances\)"),  # three one-file series
        ("98892003/MR2", InconsistentSeries, r"belong to 3 series \(3, 3, 1 instances\)"),  # localizers of 3 series
    ],
)
def test_real_sets_that_are_not_one_volume(dicomdir_series, folder, error, pattern):
    with pytest.raises(error, match=pattern):
        plan_series(dicomdir_series(folder))


def test_group_series_splits_by_series_uid_largest_first(dicomdir_series):
    groups = group_series(dicomdir_series("98892003/MR2"))
    assert [len(g) for g in groups] == [3, 3, 1]
    assert all(len({str(i.header.SeriesInstanceUID) for i in group}) == 1 for group in groups)


def test_a_gap_is_reported_and_refused_for_a_model(dicomdir_series):
    paths = dicomdir_series("77654033/CT2")
    plan = plan_series(paths)
    assert [w.code for w in plan.warnings] == ["gap"]
    assert "after slice 1 (202.50 mm)" in plan.warnings[0].message
    with pytest.raises(InconsistentSeries, match=r"1 gap\(s\) in a series of 1\.25 mm slices.*send the complete series"):
        preprocess_series(paths, PreprocessingSpec(layout="CDHW"))


def test_an_instance_sent_twice_is_used_once(real_file):
    first = real_file("nibabel", "nicom/tests/data/0.dcm")
    copy = real_file("nibabel", "tests/data/0.dcm")  # the same SOP instance, another copy
    second = real_file("nibabel", "nicom/tests/data/1.dcm")
    series = assemble_series([first.data, copy.data, second.data])
    assert series.volume.shape[0] == 2
    assert [w.code for w in series.warnings] == ["duplicate_instance"]


@pytest.mark.parametrize(
    ("distances", "pixel_spacings", "sizes", "pattern"),
    [
        ([0, 2, 2, 4], None, None, r"2 frames share a slice position .* slices 2 and 3"),  # two instances, one place
        ([0, 2, 4, 6], [(0.8, 0.8), (0.8, 0.8), (0.7, 0.7), (0.8, 0.8)], None, r"differ in \(0028,0030\) Pixel Spacing"),
        ([0, 2, 4, 6], None, [(12, 12), (12, 12), (12, 12), (10, 12)], r"differ in size \(rows×columns\) \(12×12 ×3, 10×12 ×1\)"),
    ],
)
def test_synthetic_sets_that_are_not_one_volume(rng, distances, pixel_spacings, sizes, pattern):
    hu = _phantom(rng, 4, 12, 12)
    datasets = testdata.ct_series(hu, pixel_spacing_mm=(0.8, 0.8), distances_mm=distances, shuffle_seed=None)
    for k, ds in enumerate(datasets):
        if pixel_spacings:
            ds.PixelSpacing = list(pixel_spacings[k])
        if sizes and sizes[k] != (12, 12):
            ds.Rows, ds.Columns = sizes[k]
            ds.PixelData = ds.PixelData[: sizes[k][0] * sizes[k][1] * 2]
    with pytest.raises(InconsistentSeries, match=pattern):
        plan_series(datasets)


class TestWarnings:
    def test_uneven_spacing_is_reported_within_tolerance(self, rng):
        datasets = testdata.ct_series(_phantom(rng), pixel_spacing_mm=(1, 1), distances_mm=[0, 2, 4.3, 6, 8, 10])
        plan = plan_series(datasets)
        assert [w.code for w in plan.warnings] == ["non_uniform_spacing"]
        assert plan.warnings[0].message.startswith("slice steps range from 1.700 to 2.300 mm (median 2.000 mm")
        assert plan_series(datasets, spacing_tolerance=0.2).warnings == ()
        with pytest.raises(InconsistentSeries, match=r"needs evenly spaced slices"):
            preprocess_series(datasets, PreprocessingSpec(layout="CDHW"))

    def test_gantry_tilt_is_reported_and_kept_in_the_affine(self, rng):
        datasets = testdata.ct_series(
            _phantom(rng), pixel_spacing_mm=(1, 1), distances_mm=np.arange(6) * 2.0, shear_mm_per_mm=(0, 0.2, 0)
        )
        series = assemble_series(datasets)
        assert [w.code for w in series.warnings] == ["gantry_tilt"]
        assert "11.31°" in series.warnings[0].message
        positions = sorted((tuple(float(v) for v in ds.ImagePositionPatient) for ds in datasets), key=lambda p: p[2])
        for k, position in enumerate(positions):
            np.testing.assert_allclose(series.affine_lps @ [k, 0, 0, 1], [*position, 1], atol=1e-9)

    def test_a_cine_loop_without_positions_keeps_its_frame_order(self, real_file):
        cine = real_file("pydicom-data", "emri_small.dcm")
        series = assemble_series([cine.data])
        assert [w.code for w in series.warnings] == ["no_pixel_spacing", "no_geometry"]
        np.testing.assert_array_equal(series.volume, cine.dataset().pixel_array.astype(np.float32))


@pytest.mark.parametrize(
    ("change", "error", "pattern"),
    [
        ("no_geometry", InconsistentSeries, r"6 instances have no \(0020,0032\) .* cannot be put in order"),  # all lack IPP
        ("one_without_geometry", InconsistentSeries, r"1 of 6 frames have no \(0020,0032\)"),  # one lacks IPP
        ("no_instances", InconsistentSeries, r"no DICOM instances were given"),  # empty request
    ],
)
def test_instances_that_cannot_be_placed(rng, change, error, pattern):
    datasets = testdata.ct_series(_phantom(rng), pixel_spacing_mm=(1, 1), distances_mm=np.arange(6) * 2.0)
    if change == "no_geometry":
        for ds in datasets:
            del ds.ImagePositionPatient
    elif change == "one_without_geometry":
        del datasets[3].ImagePositionPatient
    else:
        datasets = []
    with pytest.raises(error, match=pattern):
        plan_series(datasets)


def test_an_instance_without_pixels_is_reported_before_decoding(dicomdir_series):
    headers = dicomdir_series("TINY_ALPHA/PT000000/ST000000/SE000000")
    with pytest.raises(MissingPixelData, match=r"no \(7FE0,0010\) Pixel Data"):
        plan_series(headers)


@pytest.mark.parametrize(
    "syntax",
    [
        RLELossless,  # pydicom's own RLE encoder
        JPEGLSLossless,  # pyjpegls
        JPEG2000Lossless,  # pylibjpeg-openjpeg
    ],
)
def test_a_compressed_series_assembles_like_the_uncompressed_one(rng, syntax):
    hu = _phantom(rng, 4, 64, 64)
    plain = assemble_series(testdata.ct_series(hu, pixel_spacing_mm=(1, 1), distances_mm=[0, 1, 2, 3]))
    compressed = testdata.ct_series(hu, pixel_spacing_mm=(1, 1), distances_mm=[0, 1, 2, 3], transfer_syntax=syntax)
    encoded = []
    for ds in compressed:
        data = io.BytesIO()
        ds.save_as(data, enforce_file_format=True)
        encoded.append(data.getvalue())
    series = assemble_series(encoded)
    assert {str(pydicom.dcmread(io.BytesIO(b)).file_meta.TransferSyntaxUID) for b in encoded} == {str(syntax)}
    np.testing.assert_array_equal(series.volume, plain.volume)
    np.testing.assert_allclose(series.affine_lps, plain.affine_lps)
