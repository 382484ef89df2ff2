"""Intensity normalization against MONAI's transforms (which MR models are usually trained
with), and clipping."""

from __future__ import annotations

import numpy as np
import pytest

from preprocessing import NormalizeSpec
from preprocessing.normalize import clip_values, normalize


@pytest.fixture(scope="module")
def monai_transforms():
    """MONAI (the dev extra installs it with export) as the reference; imported here, not at
    collection, because it brings torch."""
    import monai.transforms

    return monai.transforms


def _mr_like(rng):
    """An MR-like volume: background 0 around a positive, skewed signal."""
    volume = np.zeros((6, 32, 32), dtype=np.float32)
    volume[:, 8:24, 8:24] = rng.gamma(4.0, 120.0, size=(6, 16, 16)).astype(np.float32)
    return volume


@pytest.mark.parametrize(
    "nonzero",
    [
        False,  # statistics over every voxel
        True,  # over the foreground only; the background stays 0
    ],
)
def test_zscore_equals_monai_normalize_intensity(rng, monai_transforms, nonzero):
    volume = _mr_like(rng)
    ours, stats = normalize(volume, NormalizeSpec("zscore", nonzero=nonzero))
    expected = np.asarray(monai_transforms.NormalizeIntensity(nonzero=nonzero)(volume))
    np.testing.assert_allclose(ours, expected, atol=1e-5)
    assert set(stats) == {"mean", "std"}


@pytest.mark.parametrize(
    ("lower", "upper", "clip"),
    [
        (0.5, 99.5, True),  # the usual robust range
        (5.0, 95.0, False),  # unclipped: tails go beyond [0, 1]
        (0.0, 100.0, True),  # min-max
    ],
)
def test_percentile_equals_monai_scale_intensity_range_percentiles(rng, monai_transforms, lower, upper, clip):
    volume = _mr_like(rng)
    ours, stats = normalize(volume, NormalizeSpec("percentile", lower=lower, upper=upper, clip=clip))
    transform = monai_transforms.ScaleIntensityRangePercentiles(lower=lower, upper=upper, b_min=0.0, b_max=1.0, clip=clip)
    np.testing.assert_allclose(ours, np.asarray(transform(volume)), atol=1e-5)
    assert stats["lower_value"] == pytest.approx(np.percentile(volume, lower))


def test_a_constant_image_is_only_shifted():
    ours, stats = normalize(np.full((4, 4), 7.0, np.float32), NormalizeSpec("zscore"))
    np.testing.assert_array_equal(ours, np.zeros((4, 4)))
    assert stats == {"mean": 7.0, "std": 0.0}


def test_normalize_leaves_the_input_alone_unless_in_place(rng):
    volume = _mr_like(rng)
    before = volume.copy()
    normalize(volume, NormalizeSpec("zscore"))
    np.testing.assert_array_equal(volume, before)
    out, _ = normalize(volume, NormalizeSpec("zscore"), inplace=True)
    assert out is volume


@pytest.mark.parametrize(
    ("clip_range", "expected"),
    [
        ((-1000.0, 1000.0), [-1000.0, -50.0, 1000.0]),  # both bounds (HU)
        ((None, 400.0), [-3024.0, -50.0, 400.0]),  # upper only
        ((-1024.0, None), [-1024.0, -50.0, 3071.0]),  # lower only (air)
    ],
)
def test_clip_range(clip_range, expected):
    np.testing.assert_array_equal(clip_values(np.array([-3024.0, -50.0, 3071.0]), clip_range), expected)
