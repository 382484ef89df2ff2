"""Crop to the foreground (``crop_foreground``) against MONAI's ``CropForeground``; the z-score's
``ddof`` against ``torch.Tensor.std``; ``clip_percentiles`` taken ``of`` a cascade's localiser;
and the series path split into loading and finishing (what a cascade's stages share)."""

from __future__ import annotations

import numpy as np
import pytest

from preprocessing import PreprocessingSpec, preprocess_series
from preprocessing.errors import InvalidSpec
from preprocessing.foreground import foreground_box
from preprocessing.normalize import apply_steps, clip_percentile_values
from preprocessing.pipeline import finish_volume, load_series_volume, prepare_slice
from preprocessing.series import plan_series
from preprocessing.spec import ForegroundCrop, NormalizeStep


def _body_series(folder):
    """A CT series: air around a box of soft tissue, written as DICOM files with geometry."""
    from devtools.dicomgen import write_ct_series

    volume = np.full((6, 40, 48), -1000, dtype=np.int16)
    volume[1:5, 10:30, 12:40] = 40
    return write_ct_series(folder, volume, spacing_mm=(2.5, 0.8, 0.8))


@pytest.fixture(scope="module")
def monai_transforms():
    import monai.transforms

    return monai.transforms


def _blob(rng, shape, boxes):
    volume = rng.normal(0.0, 0.01, size=shape).astype(np.float32)
    volume[volume > 0] = 0.0  # background at or below 0
    for box in boxes:
        volume[box] = rng.uniform(10, 100, size=volume[box].shape)
    return volume


@pytest.mark.parametrize("margin", [0, 1, 3, 7])
@pytest.mark.parametrize(
    "boxes",
    [
        [np.s_[2:5, 3:9, 4:6]],
        [np.s_[0:2, 0:3, 10:12], np.s_[6:8, 9:12, 0:1]],  # two blobs, one touching the border
        [np.s_[4:5, 5:6, 6:7]],  # a single voxel
    ],
)
def test_box_equals_monai_crop_foreground(rng, monai_transforms, margin, boxes):
    volume = _blob(rng, (8, 12, 12), boxes)
    crop = monai_transforms.CropForeground(select_fn=lambda x: x > 0, margin=margin, allow_smaller=True)
    expected = np.asarray(crop(volume[None]))[0]
    box = foreground_box(volume, ForegroundCrop(above=0.0, margin_voxels=margin), (1.0, 1.0, 1.0))
    np.testing.assert_array_equal(volume[box], expected)


def test_margin_in_mm_rounds_up_to_whole_voxels_per_axis(rng):
    volume = _blob(rng, (10, 20, 20), [np.s_[4:6, 8:12, 8:12]])
    box = foreground_box(volume, ForegroundCrop(above=0.0, margin_mm=5.0), (2.5, 0.8, 1.0))
    # 5 mm is 2 slices of 2.5 mm, 6.25 -> 7 rows of 0.8 mm, 5 columns of 1 mm
    assert box == (slice(2, 8), slice(1, 19), slice(3, 17))


def test_no_foreground_keeps_the_image():
    assert foreground_box(np.zeros((4, 4, 4), np.float32), ForegroundCrop(above=0.0), (1.0, 1.0, 1.0)) is None


def test_spec_round_trip_and_refusals():
    spec = PreprocessingSpec.from_dict({"layout": "CDHW", "crop_foreground": {"above": -500, "margin_mm": 10}})
    assert spec.crop_foreground == ForegroundCrop(above=-500.0, margin_mm=10.0)
    assert PreprocessingSpec.from_dict(spec.to_dict()) == spec
    assert "crop_foreground" not in PreprocessingSpec(layout="CDHW").to_dict()  # unchanged serialization
    with pytest.raises(InvalidSpec, match="margin_mm"):
        PreprocessingSpec.from_dict({"crop_foreground": {"margin_mm": -1}})
    with pytest.raises(InvalidSpec, match="crop_foreground"):
        PreprocessingSpec.from_dict({"crop_foreground": [1, 2]})


def test_series_crop_moves_the_affine_with_the_voxels(tmp_path):
    """The cropped volume's geometry still puts each voxel where it was: voxel (0, 0, 0) of
    the crop is the box corner of the uncropped volume."""
    paths = _body_series(tmp_path)
    plain = preprocess_series(paths, PreprocessingSpec(layout="CDHW"))
    cropped = preprocess_series(paths, PreprocessingSpec(layout="CDHW", crop_foreground=ForegroundCrop(above=-500.0, margin_voxels=2)))
    (d0, _), (h0, _), (w0, _) = cropped.applied["cropped_to_foreground"]
    np.testing.assert_allclose(cropped.geometry.affine_lps[:3, 3], plain.geometry.affine_lps[:3, :3] @ [d0, h0, w0] + plain.geometry.affine_lps[:3, 3])
    d, h, w = cropped.geometry.shape
    np.testing.assert_array_equal(cropped.array[0], plain.array[0, d0 : d0 + d, h0 : h0 + h, w0 : w0 + w])
    assert cropped.geometry.shape < plain.geometry.shape


def test_slice_crop_2d(rng):
    image = _blob(rng, (40, 30), [np.s_[10:20, 5:12]])
    prepared = prepare_slice(image, PreprocessingSpec(crop_foreground=ForegroundCrop(above=0.0, margin_voxels=1)), pixel_spacing=(1.0, 1.0))
    assert prepared.applied["cropped_to_foreground"] == [[9, 21], [4, 13]]
    np.testing.assert_array_equal(prepared.array[0], image[9:21, 4:13])


@pytest.mark.parametrize("nonzero", [False, True])
def test_zscore_ddof_1_equals_torch_std(rng, nonzero):
    import torch

    volume = rng.gamma(3.0, 50.0, size=(5, 9, 11)).astype(np.float32)
    volume[0] = 0
    out, _ = apply_steps(volume, (NormalizeStep(op="zscore", ddof=1, nonzero=nonzero),))
    x = torch.from_numpy(volume.astype(np.float64))
    if nonzero:
        m = x != 0
        expected = x.clone()
        expected[m] = (x[m] - x[m].mean()) / x[m].std()
    else:
        expected = (x - x.mean()) / x.std()
    np.testing.assert_allclose(out, expected.numpy(), atol=1e-5)


def test_deepbet_normalization_equals_its_torch_code(rng):
    """deepbet's ``normalize``: (x - low) / (high - low) clamped to [0, 1], z-scored with the
    sample std, then 0.226 x + 0.449 — written as a chain, with torch.quantile's percentiles."""
    import torch

    x = torch.from_numpy(rng.gamma(2.0, 80.0, size=(16, 16, 16)).astype(np.float32))
    low, high = x.quantile(0.005), x.quantile(0.995)
    y = ((x - low) / (high - low)).clamp(0, 1)
    expected = 0.226 * (y - y.mean()) / y.std() + 0.449
    chain = PreprocessingSpec.from_dict({"normalize_steps": [
        {"op": "clip_percentiles", "low": 0.5, "high": 99.5},
        {"op": "zscore", "ddof": 1},
        {"op": "scale_shift", "scale": 0.226, "shift": 0.449},
    ]}).normalize_steps
    out, _ = apply_steps(x.numpy(), chain)
    np.testing.assert_allclose(out, expected.numpy(), atol=2e-5)


def test_percentiles_of_the_localiser_are_used_when_given(rng):
    volume = rng.uniform(0, 100, size=(4, 8, 8)).astype(np.float32)
    step = NormalizeStep(op="clip_percentiles", low=1.0, high=99.0, of="localiser")
    out, record = apply_steps(volume, (step,), localiser_percentiles=(20.0, 60.0))
    assert out.min() == 20.0 and out.max() == 60.0 and record[0]["of"] == "localiser"
    assert clip_percentile_values(record) == (20.0, 60.0)
    own, own_record = apply_steps(volume, (step,))  # outside a cascade: its own image
    assert clip_percentile_values(own_record) == pytest.approx(tuple(np.percentile(volume, [1.0, 99.0])))
    assert step.to_dict() == {"op": "clip_percentiles", "low": 1.0, "high": 99.0, "nonzero": False, "of": "localiser"}
    assert "of" not in NormalizeStep(op="clip_percentiles", low=1.0, high=99.0).to_dict()


def test_step_keys_refused(rng):
    with pytest.raises(InvalidSpec, match="ddof"):
        PreprocessingSpec.from_dict({"normalize_steps": [{"op": "zscore", "ddof": 2}]})
    with pytest.raises(InvalidSpec, match="of"):
        PreprocessingSpec.from_dict({"normalize_steps": [{"op": "clip_percentiles", "low": 1, "high": 99, "of": "atlas"}]})


def test_finishing_twice_from_one_loaded_volume_leaves_it_untouched(tmp_path):
    """A cascade prepares its localiser and its later stage from one loaded series: finishing
    never writes into the loaded values, and equals the one-call path."""
    plan = plan_series(_body_series(tmp_path))
    spec = PreprocessingSpec.from_dict({"layout": "CDHW", "output_size": [4, 16, 16], "resize_mode": "nearest-exact",
                                        "stats_grid": "output", "normalize_steps": [{"op": "zscore"}]})
    base = load_series_volume(plan, spec)
    before = base.values.copy()
    first = finish_volume(base, spec)
    cropped = finish_volume(base, spec, region=(slice(1, 5), slice(10, 30), slice(20, 40)))
    np.testing.assert_array_equal(base.values, before)
    np.testing.assert_array_equal(first.array, preprocess_series(plan, spec).array)
    assert cropped.applied["cropped_to_region"] == [[1, 5], [10, 30], [20, 40]]
