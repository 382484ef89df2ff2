"""End to end: DICOM → model input. The 2D CT path keeps the exact values the demo classifier
was trained on; the series path agrees with an independent scipy computation, with the 2D
path slice by slice, and places its voxels where its geometry says."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.pixels import apply_modality_lut
from scipy import ndimage

from devtools import testdata
from devtools.phantoms import chest_slice
from preprocessing import (
    InconsistentSeries,
    InvalidDicom,
    ModalityMismatch,
    PreprocessingSpec,
    assemble_series,
    plan_series,
    prepare_slice,
    preprocess_instance,
    preprocess_series,
    read_dataset,
)

#: The demo classifier's spec, as stored in its model config.
STORED = {"modalities": ["CT"], "window": {"preset": "lung"}, "output_size": [128, 128], "layout": "CHW", "dtype": "float32"}


def _legacy_2d(values_hu: np.ndarray) -> np.ndarray:
    """The 2D CT computation the demo classifier was trained with, written out: lung window
    (LINEAR, float32) then ``ndimage.zoom(order=1, mode="nearest", grid_mode=True)``."""
    low = np.float32((-600.0 - 0.5) - (1500.0 - 1.0) / 2.0)
    windowed = np.clip((values_hu.astype(np.float32) - low) * np.float32(1.0 / 1499.0), 0.0, 1.0)
    factors = (128 / windowed.shape[0], 128 / windowed.shape[1])
    return ndimage.zoom(windowed, factors, order=1, mode="nearest", grid_mode=True)[:128, :128][np.newaxis]


class TestInstance:
    def test_real_ct_keeps_the_trained_values(self, real_ct_files):
        spec = PreprocessingSpec.from_dict(STORED)
        for path in real_ct_files.values():
            ds = read_dataset(path.read_bytes())
            prepared = preprocess_instance(ds, spec)
            hu = apply_modality_lut(ds.pixel_array, ds)
            np.testing.assert_allclose(prepared.array, _legacy_2d(hu), rtol=0, atol=1e-6)  # float32 rounding
            assert prepared.array.dtype == np.float32
            assert prepared.applied["window"] == {"center": -600.0, "width": 1500.0, "function": "LINEAR", "preset": "lung"}
            assert prepared.applied["resized_to"] == [128, 128] and prepared.applied["output_shape"] == [1, 128, 128]

    def test_phantom_ct_as_the_trainer_prepares_it(self, rng):
        hu = chest_slice(rng, size=256, nodules=1).hu
        ds = testdata.ct_series(hu[np.newaxis], pixel_spacing_mm=(1.4, 1.4), distances_mm=[0])[0]
        spec = PreprocessingSpec.from_dict(STORED)
        stored_hu = apply_modality_lut(ds.pixel_array, ds)
        np.testing.assert_allclose(prepare_slice(stored_hu.astype(np.float32), spec).array, _legacy_2d(stored_hu), rtol=0, atol=1e-6)
        np.testing.assert_allclose(preprocess_instance(ds, spec).array, _legacy_2d(stored_hu), rtol=0, atol=1e-6)

    def test_in_plane_spacing_then_crop_pad(self, real_file):
        ds = real_file("pydicom", "CT_small.dcm").dataset()  # 128×128 at 0.661 mm
        spec = PreprocessingSpec.from_dict(
            {"window": {"preset": "mediastinum"}, "spacing_mm": [1.0, 1.0], "output_size": [96, 96], "size_mode": "crop_pad"}
        )
        prepared = preprocess_instance(ds, spec)
        assert prepared.array.shape == (1, 96, 96)
        assert round(128 * float(ds.PixelSpacing[0])) == 85  # resampled to 85×85, then padded with 0
        assert not prepared.array[0, :5].any() and not prepared.array[0, -6:].any()

    @pytest.mark.parametrize(
        ("source", "name", "spec", "error", "pattern"),
        [
            ("pydicom", "MR_small.dcm", STORED, ModalityMismatch, r"takes CT images; the instance's Modality is MR"),  # MR to a CT model
            ("pydicom", "CT_small.dcm", {"layout": "CDHW"}, InconsistentSeries, r"takes a whole series"),  # 3D model, one slice
            ("pydicom", "CT_small.dcm", {"stack_slices": 3}, InconsistentSeries, r"send all instances of the series"),  # 2.5D model
            ("pydicom", "examples_rgb_color.dcm", {}, InvalidDicom, r"takes grayscale images; the instance is color .* RGB"),  # US RGB
            ("pydicom", "examples_ybr_color.dcm", {"channels": 3}, InvalidDicom, r"one single-frame image.*30 frames"),  # cine
            ("pydicom", "MR_small.dcm", {"window": {"from_dicom": True, "voi_index": 1}}, InvalidDicom, r"view 2\), and this instance has none"),  # one window only
            ("pydicom-data", "US1_UNCI.dcm", {"channels": 3, "spacing_mm": [1, 1]}, InvalidDicom, r"no \(0028,0030\) Pixel Spacing"),  # US without spacing
            ("pydicom", "badVR.dcm", STORED, InvalidDicom, r"\(0028,0008\) Number Of Frames"),  # broken before modality check
        ],
    )
    def test_instances_a_model_cannot_take(self, real_file, source, name, spec, error, pattern):
        ds = real_file(source, name).dataset()
        with pytest.raises(error, match=pattern) as raised:
            preprocess_instance(ds, PreprocessingSpec.from_dict(spec))
        for identifying in (str(ds.get("PatientName", "")), str(ds.get("PatientID", ""))):
            if identifying:
                assert identifying not in raised.value.message


def _series(rng, orientation=testdata.SAGITTAL_ORIENTATION, slices=12):
    hu = np.rint(rng.uniform(-1000, 1000, (slices, 40, 36))).astype(np.float32)
    hu[:, 10:30, 8:28] = 40.0  # soft tissue block
    return testdata.ct_series(
        hu, pixel_spacing_mm=(0.9, 1.1), distances_mm=np.arange(slices) * 2.0, orientation=orientation, origin_mm=(5.0, -7.0, 11.0)
    )


class TestSeries:
    def test_resampled_reoriented_volume_equals_scipy_at_the_stated_positions(self, rng):
        """Every output voxel: the lung window of the HU that scipy interpolates (linearly)
        at the LPS position the output affine gives that voxel."""
        datasets = _series(rng)
        spec = PreprocessingSpec.from_dict(
            {"modalities": ["CT"], "window": {"preset": "lung"}, "spacing_mm": [1.5, 1.5, 1.5], "orientation": "SPL", "layout": "CDHW"}
        )
        prepared = preprocess_series(datasets, spec)
        series = assemble_series(datasets)
        assert prepared.geometry.orientation == "SPL"
        assert prepared.geometry.spacing_mm == pytest.approx((1.5, 1.5, 1.5))
        shape = prepared.array.shape[1:]
        index = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).reshape(-1, 3)
        positions = index @ prepared.geometry.affine_lps[:3, :3].T + prepared.geometry.affine_lps[:3, 3]
        source_index = np.linalg.solve(series.affine_lps[:3, :3], (positions - series.affine_lps[:3, 3]).T)
        inside = np.all((source_index > -1e-6) & (source_index < np.array(series.volume.shape)[:, None] - 1 + 1e-6), axis=0)
        hu = ndimage.map_coordinates(series.volume.astype(np.float64), source_index, order=1, mode="nearest")
        low = (-600.0 - 0.5) - 1499.0 / 2.0
        expected = np.clip((hu - low) / 1499.0, 0.0, 1.0)
        np.testing.assert_allclose(prepared.array[0].reshape(-1)[inside], expected[inside], atol=1e-5)
        assert inside.mean() > 0.9
        np.testing.assert_array_equal(prepared.source_geometry.affine_lps, series.affine_lps)
        assert prepared.source_geometry.shape == series.volume.shape

    def test_series_of_2d_items_equals_the_2d_path_slice_by_slice(self, rng):
        datasets = _series(rng, orientation=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0), slices=5)
        spec = PreprocessingSpec.from_dict(STORED)
        prepared = preprocess_series(datasets, spec)
        assert prepared.array.shape == (5, 1, 128, 128)
        by_position = sorted(datasets, key=lambda ds: float(ds.ImagePositionPatient[2]))
        for k, ds in enumerate(by_position):
            np.testing.assert_allclose(prepared.array[k], preprocess_instance(ds, spec).array, atol=1e-6)

    def test_stacks_of_adjacent_slices(self, rng):
        datasets = _series(rng, orientation=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0), slices=5)
        single = preprocess_series(datasets, PreprocessingSpec.from_dict({"window": {"preset": "lung"}}))
        stacked = preprocess_series(datasets, PreprocessingSpec.from_dict({"window": {"preset": "lung"}, "stack_slices": 5}))
        assert stacked.array.shape == (5, 5, 40, 36)
        for k in range(5):
            for c, neighbour in enumerate(range(k - 2, k + 3)):
                np.testing.assert_array_equal(stacked.array[k, c], single.array[min(max(neighbour, 0), 4), 0])

    def test_output_size_resize_and_crop_pad_keep_the_geometry_true(self, rng):
        datasets = _series(rng, orientation=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0), slices=8)
        series = assemble_series(datasets)
        for size_mode in ("resize", "crop_pad"):
            spec = PreprocessingSpec.from_dict(
                {"spacing_mm": [2.0, 1.0, 1.0], "output_size": [8, 32, 48], "size_mode": size_mode, "layout": "CDHW", "pad_value": -1024}
            )
            prepared = preprocess_series(datasets, spec)
            assert prepared.array.shape == (1, 8, 32, 48)
            centre = np.array([3, 16, 24])
            position = prepared.geometry.affine_lps @ [*centre, 1]
            source = np.linalg.solve(series.affine_lps, position)[:3]
            expected = ndimage.map_coordinates(series.volume.astype(np.float64), source[:, None], order=1)[0]
            assert prepared.array[0][tuple(centre)] == pytest.approx(expected, abs=40.0 if size_mode == "resize" else 1e-3)

    def test_mr_series_normalized(self, rng):
        signal = rng.gamma(4.0, 100.0, (6, 16, 16))
        datasets = testdata.mr_series(signal, pixel_spacing_mm=(1, 1), distances_mm=np.arange(6) * 3.0)
        prepared = preprocess_series(datasets, PreprocessingSpec.from_dict({"modalities": ["MR"], "normalize": {"method": "zscore"}, "layout": "CDHW"}))
        assert prepared.array.mean() == pytest.approx(0.0, abs=1e-5)
        assert prepared.array.std() == pytest.approx(1.0, abs=1e-4)
        assert prepared.applied["normalize"]["method"] == "zscore"

    def test_a_series_plan_made_by_the_caller_gives_the_same_input(self, dicomdir_series):
        paths = dicomdir_series("98892001/CT5N")
        spec = PreprocessingSpec.from_dict({"window": {"preset": "lung"}, "spacing_mm": [3.0, 1.5, 1.5], "layout": "CDHW"})
        from_paths, from_plan = preprocess_series(paths, spec), preprocess_series(plan_series(paths), spec)
        np.testing.assert_array_equal(from_plan.array, from_paths.array)
        assert from_plan.applied == from_paths.applied

    def test_from_dicom_window_of_a_series_uses_its_middle_slice(self, dicomdir_series):
        paths = dicomdir_series("98892001/CT5N")
        prepared = preprocess_series(paths, PreprocessingSpec.from_dict({"window": {"from_dicom": True}, "layout": "CDHW"}))
        assert prepared.applied["window"] == {"from_dicom": True, "voi_index": 0, "function": "LINEAR"}
        assert 0.0 <= prepared.array.min() and prepared.array.max() <= 1.0

    def test_a_ct_series_sent_to_an_mr_model(self, rng):
        with pytest.raises(ModalityMismatch, match=r"takes MR images; the instance's Modality is CT"):
            preprocess_series(_series(rng, slices=4), PreprocessingSpec.from_dict({"modalities": ["MR"], "layout": "CDHW"}))

    def test_grayscale_is_repeated_for_a_three_channel_model(self, rng):
        prepared = preprocess_series(_series(rng, slices=4), PreprocessingSpec.from_dict({"channels": 3, "layout": "CDHW"}))
        assert prepared.array.shape[0] == 3
        np.testing.assert_array_equal(prepared.array[0], prepared.array[2])

    def test_a_color_cine_loop_as_an_rgb_volume(self, real_file):
        cine = real_file("pydicom", "examples_ybr_color.dcm")
        prepared = preprocess_series([cine.data], PreprocessingSpec(layout="CDHW", channels=3))
        assert prepared.array.shape == (3, 30, 240, 320)
        np.testing.assert_array_equal(prepared.array, np.moveaxis(cine.dataset().pixel_array, -1, 0).astype(np.float32))
        assert [w["code"] for w in prepared.applied["series_warnings"]] == ["no_pixel_spacing", "no_geometry"]

    def test_a_color_series_sent_to_a_grayscale_model(self, real_file):
        with pytest.raises(InvalidDicom, match=r"takes grayscale images; the instance is color .* YBR_FULL_422"):
            preprocess_series([real_file("pydicom", "examples_ybr_color.dcm").data], PreprocessingSpec(layout="CDHW"))

    def test_applied_record_is_json_and_names_no_patient(self, rng):
        import json

        datasets = _series(rng, slices=4)
        prepared = preprocess_series(datasets, PreprocessingSpec.from_dict({"window": {"preset": "bone"}, "layout": "CDHW", "spacing_mm": [2, 2, 2]}))
        text = json.dumps(prepared.applied)
        for identifying in ("PHANTOM", str(datasets[0].SeriesInstanceUID), str(datasets[0].StudyInstanceUID)):
            assert identifying not in text
        assert prepared.applied["input_orientation"] == "RIP" and prepared.applied["orientation"] == "RIP"


class TestFiniteCheck:
    """A model input holds finite numbers only; the check must not refuse large finite ones."""

    @pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
    def test_nan_or_infinity_anywhere_is_refused(self, bad):
        from preprocessing.pipeline import _check_finite

        values = np.zeros((3, 4, 5), dtype=np.float32)
        values[2, 3, 1] = bad
        with pytest.raises(InvalidDicom, match="NaN or infinite"):
            _check_finite(values)

    def test_finite_values_whose_float32_sum_overflows_are_accepted(self):
        from preprocessing.pipeline import _check_finite

        huge = np.full((4, 8), np.finfo(np.float32).max, dtype=np.float32)
        with np.errstate(over="ignore"):
            assert not np.isfinite(huge.sum(dtype=np.float32))
        _check_finite(huge)
        _check_finite(-huge)
