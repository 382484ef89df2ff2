"""The spec's ``resize_mode``, ``normalize_steps`` and ``stats_grid``: the chain against numpy
and MONAI (``ClipIntensityPercentiles``, ``NormalizeIntensity``), the JSON round trip, and the
pipeline against PyTorch's ``interpolate`` followed by numpy on the grid the spec declares."""

from __future__ import annotations

import json

import numpy as np
import pytest

from devtools import testdata
from preprocessing import PreprocessingSpec, preprocess_series
from preprocessing.errors import InvalidSpec
from preprocessing.normalize import apply_steps
from preprocessing.pipeline import prepare_slice
from preprocessing.resample import RESIZE_MODES as RESAMPLE_MODES
from preprocessing.spec import RESIZE_MODES, NormalizeStep

#: The chain of the issue: percentiles clip, z-score, then scale and shift, then a value clip.
CHAIN = [
    {"op": "clip_percentiles", "low": 0.5, "high": 99.5},
    {"op": "zscore"},
    {"op": "scale_shift", "scale": 2.0, "shift": 0.5},
    {"op": "clip", "low": -3.0, "high": 3.0},
]


def _mr_like(rng, shape=(6, 32, 32)):
    volume = np.zeros(shape, dtype=np.float32)
    volume[:, 8:24, 8:24] = rng.gamma(4.0, 120.0, size=(shape[0], 16, 16)).astype(np.float32)
    return volume


def _numpy_chain(x: np.ndarray) -> np.ndarray:
    """The reference: the same chain written directly in float64 numpy."""
    x = x.astype(np.float64)
    x = np.clip(x, *np.percentile(x, [0.5, 99.5]))
    x = (x - x.mean()) / x.std()
    return np.clip(x * 2.0 + 0.5, -3.0, 3.0)


def _steps(chain) -> tuple[NormalizeStep, ...]:
    return PreprocessingSpec.from_dict({"normalize_steps": chain}).normalize_steps


def test_modes_of_the_spec_are_the_resampler_s():
    assert RESIZE_MODES == RESAMPLE_MODES


def test_chain_equals_numpy(rng):
    volume = _mr_like(rng)
    out, record = apply_steps(volume, _steps(CHAIN))
    np.testing.assert_allclose(out, _numpy_chain(volume), atol=1e-5)
    assert [entry["op"] for entry in record] == [step["op"] for step in CHAIN]
    assert record[0]["upper_value"] == pytest.approx(np.percentile(volume, 99.5))
    assert volume.max() > 3  # the input is not modified unless inplace


@pytest.mark.parametrize("nonzero", [False, True])
def test_percentile_clip_and_zscore_equal_monai(rng, nonzero):
    transforms = pytest.importorskip("monai.transforms")
    volume = _mr_like(rng)
    chain = [{"op": "clip_percentiles", "low": 2.0, "high": 98.0}, {"op": "zscore", "nonzero": nonzero}]
    ours, _ = apply_steps(volume, _steps(chain))
    reference = transforms.Compose(
        [transforms.ClipIntensityPercentiles(lower=2.0, upper=98.0), transforms.NormalizeIntensity(nonzero=nonzero)]
    )(volume[None])
    np.testing.assert_allclose(ours, np.asarray(reference)[0], atol=1e-4)


def test_nonzero_percentiles_and_window(rng):
    volume = _mr_like(rng)
    out, _ = apply_steps(volume, _steps([{"op": "clip_percentiles", "low": 10, "high": 90, "nonzero": True}]))
    low, high = np.percentile(volume[volume != 0], [10, 90])
    np.testing.assert_allclose(out, np.clip(volume, low, high), rtol=1e-6)
    windowed, _ = apply_steps(volume, _steps([{"op": "window", "center": 400, "width": 600}]))
    inside = (volume > 150) & (volume < 650)
    # DICOM LINEAR: ((v - (c - 0.5)) / (w - 1) + 0.5) clipped to [0, 1]
    np.testing.assert_allclose(windowed[inside], ((volume[inside] - 399.5) / 599 + 0.5), atol=1e-5)
    assert windowed.min() == 0.0 and windowed.max() == 1.0


def test_round_trip_and_old_specs_serialize_as_before():
    spec = PreprocessingSpec.from_dict(
        {"layout": "CDHW", "output_size": [8, 16, 16], "resize_mode": "nearest-exact", "normalize_steps": CHAIN, "stats_grid": "output"}
    )
    data = json.loads(json.dumps(spec.to_dict()))
    # each step with exactly the keys its op takes, defaults written out
    assert data["normalize_steps"] == [
        {**CHAIN[0], "nonzero": False}, {**CHAIN[1], "nonzero": False}, CHAIN[2], CHAIN[3]
    ]
    assert PreprocessingSpec.from_dict(data) == spec
    plain = PreprocessingSpec.from_dict({"window": {"preset": "lung"}, "output_size": [64, 64]})
    assert not {"resize_mode", "normalize_steps", "stats_grid"} & set(plain.to_dict())


@pytest.mark.parametrize(
    ("data", "pattern"),
    [
        ({"resize_mode": "lanczos"}, "resize_mode"),
        ({"stats_grid": "model"}, "stats_grid"),
        ({"normalize_steps": [{"op": "gamma"}]}, "op must be"),
        ({"normalize_steps": [{"op": "clip_percentiles", "low": 99, "high": 1}]}, "clip_percentiles"),
        ({"normalize_steps": [{"op": "clip"}]}, "'clip' needs"),
        ({"normalize_steps": [{"op": "zscore", "scale": 2}]}, "does not take scale"),
        ({"normalize_steps": {"op": "zscore"}}, "list of steps"),
        ({"normalize_steps": [{"op": "zscore"}], "normalize": {"method": "zscore"}}, "alone"),
        ({"normalize_steps": [{"op": "window", "center": 40, "width": 0.5}]}, "width"),
    ],
)
def test_malformed_options_are_refused(data, pattern):
    with pytest.raises(InvalidSpec, match=pattern):
        PreprocessingSpec.from_dict(data)


@pytest.mark.parametrize("mode", ["nearest", "nearest-exact", "area", "linear"])
def test_slice_path_equals_torch_resize_then_numpy_on_the_output_grid(rng, mode):
    torch = pytest.importorskip("torch")
    image = _mr_like(rng, (1, 40, 52))[0]
    spec = PreprocessingSpec.from_dict(
        {"output_size": [24, 20], "resize_mode": mode, "normalize_steps": CHAIN, "stats_grid": "output"}
    )
    prepared = prepare_slice(image, spec)
    torch_mode = {"linear": "bilinear"}.get(mode, mode)
    kwargs = {"align_corners": False} if mode == "linear" else {}
    resized = torch.nn.functional.interpolate(torch.from_numpy(image)[None, None], size=(24, 20), mode=torch_mode, **kwargs)
    np.testing.assert_allclose(prepared.array[0], _numpy_chain(resized[0, 0].numpy()), atol=1e-4)
    assert prepared.applied["stats_grid"] == "output"
    assert image.max() > 3  # the caller's image is untouched


def test_stats_grid_decides_where_percentiles_are_taken(rng):
    image = _mr_like(rng, (1, 40, 52))[0]
    chain = [{"op": "clip_percentiles", "low": 1, "high": 99}]
    base = {"output_size": [10, 13], "resize_mode": "area", "normalize_steps": chain}
    before = prepare_slice(image, PreprocessingSpec.from_dict(base))
    after = prepare_slice(image, PreprocessingSpec.from_dict({**base, "stats_grid": "output"}))
    assert before.applied["normalize_steps"][0]["upper_value"] == pytest.approx(np.percentile(image, 99))
    pooled = image.reshape(10, 4, 13, 4).mean(axis=(1, 3))
    assert after.applied["normalize_steps"][0]["upper_value"] == pytest.approx(np.percentile(pooled, 99), rel=1e-5)
    np.testing.assert_allclose(after.array[0], np.clip(pooled, *np.percentile(pooled, [1, 99])), rtol=1e-5)


def test_series_path_nearest_exact_then_chain_and_geometry(rng):
    torch = pytest.importorskip("torch")
    signal = rng.gamma(4.0, 100.0, (6, 16, 16))
    datasets = testdata.mr_series(signal, pixel_spacing_mm=(1, 1), distances_mm=np.arange(6) * 3.0)
    common = {"modalities": ["MR"], "layout": "CDHW", "output_size": [4, 11, 7], "normalize_steps": CHAIN}
    prepared = preprocess_series(datasets, PreprocessingSpec.from_dict({**common, "resize_mode": "nearest-exact", "stats_grid": "output"}))
    raw = preprocess_series(datasets, PreprocessingSpec.from_dict({"modalities": ["MR"], "layout": "CDHW"}))
    resized = torch.nn.functional.interpolate(torch.from_numpy(raw.array)[None], size=(4, 11, 7), mode="nearest-exact")
    np.testing.assert_allclose(prepared.array[0], _numpy_chain(resized[0, 0].numpy()), atol=1e-4)
    assert prepared.applied["resize_mode"] == "nearest-exact"
    # voxel (1, 5, 3) sits, by the affine, on the source voxel it was copied from
    source = np.linalg.solve(raw.geometry.affine_lps, prepared.geometry.affine_lps @ [1, 5, 3, 1])[:3]
    np.testing.assert_allclose(source, [(1.5 * 6 / 4) - 0.5, (5.5 * 16 / 11) - 0.5, (3.5 * 16 / 7) - 0.5], atol=1e-6)
