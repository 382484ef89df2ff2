"""Drift scores: PSI and KS over fixed bins, a sliding window, categorical mixes."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from gateway.drift import DriftMonitor, HistogramReference, histogram, ks, psi

EDGES = np.linspace(-1000, 1000, 41)


def _reference(rng: np.random.Generator) -> HistogramReference:
    return HistogramReference(EDGES, histogram(rng.normal(0, 200, 50_000), EDGES))


def test_psi_of_identical_distributions_is_zero() -> None:
    counts = np.array([10, 20, 30, 40.0])
    assert psi(counts, counts * 3) == pytest.approx(0.0, abs=1e-12)


def test_psi_matches_its_formula() -> None:
    q, p = np.array([0.25, 0.25, 0.5]), np.array([0.5, 0.25, 0.25])
    assert psi(q * 100, p * 100) == pytest.approx(np.sum((p - q) * np.log(p / q)))


def test_binned_ks_is_close_to_scipy_on_fine_bins() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 200, 20_000), rng.normal(60, 200, 20_000)
    edges = np.linspace(-1200, 1200, 2401)
    assert ks(histogram(a, edges), histogram(b, edges)) == pytest.approx(stats.ks_2samp(a, b).statistic, abs=0.01)


def test_out_of_range_values_land_in_the_end_bins() -> None:
    np.testing.assert_array_equal(histogram(np.array([-5e3, 0.0, 5e3]), np.array([-1.0, 0.0, 1.0])), [1, 2])


@pytest.mark.parametrize(
    ("shift_hu", "drifted"),
    [
        (0.0, False),  # same distribution: stays under the 0.1 'stable' line
        (300.0, True),  # +300 HU: a significant shift (PSI > 0.25)
    ],
)
def test_window_detects_a_shift(shift_hu: float, drifted: bool) -> None:
    rng = np.random.default_rng(0)
    monitor = DriftMonitor("m", {"input_intensity": _reference(rng)}, {}, window_size=50, min_samples=10)
    for _ in range(50):
        scores = monitor.observe({"input_intensity": rng.normal(shift_hu, 200, 4096)}, {})
    assert (scores["input_intensity"]["psi"] > 0.25) is drifted
    assert (scores["input_intensity"]["psi"] < 0.1) is not drifted
    assert (scores["input_intensity"]["ks"] > 0.2) is drifted


def test_the_window_forgets_old_requests() -> None:
    rng = np.random.default_rng(2)
    monitor = DriftMonitor("m", {"x": _reference(rng)}, {}, window_size=20, min_samples=5)
    for _ in range(20):
        monitor.observe({"x": rng.normal(400, 200, 1000)}, {})
    for _ in range(20):
        scores = monitor.observe({"x": rng.normal(0, 200, 1000)}, {})
    assert scores["x"]["psi"] < 0.1


def test_no_scores_before_min_samples() -> None:
    monitor = DriftMonitor("m", {"x": _reference(np.random.default_rng(3))}, {}, min_samples=3)
    assert monitor.observe({"x": np.zeros(10)}, {}) == {}
    assert monitor.observe({"x": np.zeros(10)}, {}) == {}
    assert "x" in monitor.observe({"x": np.zeros(10)}, {})


def test_categorical_mix_drift() -> None:
    monitor = DriftMonitor("m", {}, {"modality": {"CT": 1.0}}, window_size=30, min_samples=5)
    for _ in range(30):
        scores = monitor.observe({}, {"modality": "CT"})
    assert scores["modality"]["psi"] < 0.01
    for _ in range(30):
        scores = monitor.observe({}, {"modality": "MR"})  # MR sent to a CT model: 'other'
    assert scores["modality"]["psi"] > 0.25


@pytest.mark.parametrize(
    "data",
    [
        {"edges": [0, 1], "counts": [1, 2]},  # edges must be one longer than counts
        {"edges": [0, 2, 1], "counts": [1, 2]},  # edges must increase
    ],
)
def test_bad_references_are_refused(data) -> None:
    with pytest.raises(ValueError, match="histogram reference"):
        HistogramReference.from_dict(data)
