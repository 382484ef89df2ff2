"""The numbers the input quality gate compares: intensity statistics of the modality values
(equal to numpy's on the same values), geometry from the applied record, and the pipeline
recording them before any intensity step."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.dataset import Dataset

from devtools.testdata import pydicom_test_file
from preprocessing import PreprocessingSpec, preprocess_instance, read_dataset
from preprocessing.quality import FOREGROUND_LEVEL, MAX_SAMPLES, geometry_features, input_statistics, quality_features, subsample
from preprocessing.pixels import to_modality_values


class TestInputStatistics:
    def test_equal_to_numpy_on_a_small_array(self):
        values = np.random.default_rng(3).normal(40.0, 250.0, size=(64, 48)).astype(np.float32)
        stats = input_statistics(values)
        reference = values.astype(np.float64)
        p1, p99 = np.percentile(reference, [1, 99])
        assert stats["p1"] == pytest.approx(p1, rel=1e-5)
        assert stats["p99"] == pytest.approx(p99, rel=1e-5)
        assert stats["mean"] == pytest.approx(reference.mean(), rel=1e-5)
        assert stats["std"] == pytest.approx(reference.std(), rel=1e-5)
        expected = np.count_nonzero(reference > p1 + FOREGROUND_LEVEL * (p99 - p1)) / reference.size
        assert stats["foreground_fraction"] == pytest.approx(expected, rel=1e-5)

    def test_blank_image_has_no_spread_and_no_foreground(self):
        stats = input_statistics(np.zeros((176, 256, 256), dtype=np.float32))
        assert stats == {"p1": 0.0, "p99": 0.0, "mean": 0.0, "std": 0.0, "foreground_fraction": 0.0}

    def test_constant_nonzero_image_is_blank_too(self):
        stats = input_statistics(np.full((32, 32), -1024.0, dtype=np.float32))
        assert stats["std"] == 0.0 and stats["foreground_fraction"] == 0.0 and stats["p1"] == -1024.0

    def test_foreground_is_what_lies_above_the_background(self):
        """A body of 30% of the voxels at 40 HU in air at -1000 HU: the foreground is the body."""
        values = np.full(10_000, -1000.0, dtype=np.float32)
        values[:3000] = 40.0
        assert input_statistics(values)["foreground_fraction"] == pytest.approx(0.3)

    def test_a_small_bright_object_on_a_background_still_counts(self):
        """Under 1% foreground: p99 is background, and the few voxels above it are foreground."""
        values = np.zeros(10_000, dtype=np.float32)
        values[:50] = 500.0
        assert input_statistics(values)["foreground_fraction"] == pytest.approx(0.005)

    def test_large_volume_is_subsampled_regularly_and_matches_numpy_on_the_sample(self):
        volume = np.random.default_rng(5).gamma(2.0, 100.0, size=(96, 128, 128)).astype(np.float32)
        sample = subsample(volume, 1 << 16)
        assert sample.size <= 1 << 16 and np.shares_memory(sample, volume)
        assert np.array_equal(sample, volume.reshape(-1)[:: -(-volume.size // (1 << 16))])
        stats = input_statistics(volume, max_samples=1 << 16)
        assert stats["p99"] == pytest.approx(np.percentile(sample.astype(np.float64), 99), rel=1e-5)
        # the regular sample describes the whole volume closely
        assert stats["p99"] == pytest.approx(np.percentile(volume, 99), rel=0.02)
        assert stats["std"] == pytest.approx(volume.std(dtype=np.float64), rel=0.02)

    @pytest.mark.parametrize("size", [1, 2, 3, 100, 101, 4097])
    def test_percentiles_are_numpys_linear_percentiles(self, size):
        values = np.random.default_rng(size).normal(0.0, 300.0, size=size)
        stats = input_statistics(values, max_samples=size)
        p1, p99 = np.percentile(values, [1, 99])
        assert stats["p1"] == pytest.approx(p1, rel=1e-5, abs=1e-9)
        assert stats["p99"] == pytest.approx(p99, rel=1e-5, abs=1e-9)

    def test_the_default_sample_describes_a_whole_ct_slice(self):
        """693_UNCI (512 x 512, a quarter of it sampled): p1, p99 and mean within 1.5% of the
        intensity range of the whole slice's, std within 1%."""
        ds = read_dataset(pydicom_test_file("693_UNCI.dcm").read_bytes())
        hu = to_modality_values(ds, ds.pixel_array)
        assert hu.size > MAX_SAMPLES
        stats = input_statistics(hu)
        whole = input_statistics(hu, max_samples=hu.size)
        span = whole["p99"] - whole["p1"]
        for name in ("p1", "p99", "mean"):
            assert abs(stats[name] - whole[name]) <= 0.015 * span
        assert stats["std"] == pytest.approx(whole["std"], rel=0.01)


class TestGeometry:
    def test_series_spacing_and_extent_from_the_applied_record(self):
        applied = {"input_shape": [176, 256, 256], "input_spacing_mm": [1.0, 0.9375, 0.9375]}
        assert geometry_features(applied) == {
            "spacing_min_mm": 0.9375, "spacing_max_mm": 1.0, "extent_min_mm": 176.0, "extent_max_mm": 240.0,
        }

    def test_instance_spacing_from_the_header(self):
        header = Dataset()
        header.PixelSpacing = [0.5, 0.7]
        features = geometry_features({"input_shape": [512, 400, 3]}, header)
        assert features == {"spacing_min_mm": 0.5, "spacing_max_mm": 0.7, "extent_min_mm": 256.0, "extent_max_mm": 280.0}

    def test_no_spacing_no_geometry(self):
        assert geometry_features({"input_shape": [64, 64]}, Dataset()) == {}


class TestPipelineRecordsStatistics:
    def test_statistics_of_the_modality_values_before_the_window(self):
        """CT_small: the record holds the HU statistics, not those of the windowed [0, 1] input."""
        ds = read_dataset(pydicom_test_file("CT_small.dcm").read_bytes())
        spec = PreprocessingSpec.from_dict({"modalities": ["CT"], "window": {"preset": "lung"}, "output_size": [64, 64]})
        prepared = preprocess_instance(ds, spec)
        hu = to_modality_values(ds, ds.pixel_array)
        assert prepared.applied["input_statistics"] == input_statistics(hu)
        assert prepared.applied["input_statistics"]["p99"] > 1.0  # HU, not the windowed values
        features = quality_features(prepared.applied, ds)
        assert features["spacing_min_mm"] == pytest.approx(float(ds.PixelSpacing[0]))
        assert features["extent_max_mm"] == pytest.approx(128 * max(float(v) for v in ds.PixelSpacing))
