"""Drift scores: PSI and KS over fixed bins, a sliding window, categorical mixes."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from prometheus_client import CollectorRegistry, generate_latest

from gateway.drift import DriftMonitor, DriftPublisher, HistogramReference, histogram, ks, psi, uniform_histogram

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


def test_uniform_bins_by_arithmetic_equal_the_binary_search() -> None:
    rng = np.random.default_rng(5)
    values = np.concatenate([rng.normal(0, 400, 20_000), [-5e3, 5e3]]).astype(np.float32)
    np.testing.assert_array_equal(uniform_histogram(values, -1000.0, 1000.0, 40), histogram(values, EDGES))


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
        monitor.observe({"input_intensity": rng.normal(shift_hu, 200, 4096)}, {})
    scores = monitor.scores()
    assert (scores["input_intensity"]["psi"] > 0.25) is drifted
    assert (scores["input_intensity"]["psi"] < 0.1) is not drifted
    assert (scores["input_intensity"]["ks"] > 0.2) is drifted


def test_the_window_forgets_old_requests() -> None:
    rng = np.random.default_rng(2)
    monitor = DriftMonitor("m", {"x": _reference(rng)}, {}, window_size=20, min_samples=5)
    for _ in range(20):
        monitor.observe({"x": rng.normal(400, 200, 1000)}, {})
    for _ in range(20):
        monitor.observe({"x": rng.normal(0, 200, 1000)}, {})
    assert monitor.scores()["x"]["psi"] < 0.1


def test_no_scores_before_min_samples() -> None:
    monitor = DriftMonitor("m", {"x": _reference(np.random.default_rng(3))}, {}, min_samples=3)
    monitor.observe({"x": np.zeros(10)}, {})
    monitor.observe({"x": np.zeros(10)}, {})
    assert monitor.scores() == {}
    monitor.observe({"x": np.zeros(10)}, {})
    assert "x" in monitor.scores()


def test_categorical_mix_drift() -> None:
    monitor = DriftMonitor("m", {}, {"modality": {"CT": 1.0}}, window_size=30, min_samples=5)
    for _ in range(30):
        monitor.observe({}, {"modality": "CT"})
    assert monitor.scores()["modality"]["psi"] < 0.01
    for _ in range(30):
        monitor.observe({}, {"modality": "MR"})  # MR sent to a CT model: 'other'
    assert monitor.scores()["modality"]["psi"] > 0.25


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


def test_scores_are_published_when_scraped_and_a_newer_monitor_replaces_an_older_one() -> None:
    rng = np.random.default_rng(4)
    registry, publisher = CollectorRegistry(), DriftPublisher()
    registry.register(publisher)
    old = publisher.track(DriftMonitor("m", {"x": _reference(rng)}, {}, window_size=10, min_samples=2))
    for _ in range(5):
        old.observe({"x": rng.normal(300, 200, 1000)}, {})
    assert registry.get_sample_value("medserve_drift_window_samples", {"model": "m"}) == 5
    assert registry.get_sample_value("medserve_drift_score", {"model": "m", "feature": "x", "stat": "psi"}) > 0.25

    new = publisher.track(DriftMonitor("m", {"x": _reference(rng)}, {}, window_size=10, min_samples=2))
    new.observe({"x": rng.normal(0, 200, 1000)}, {})
    assert registry.get_sample_value("medserve_drift_window_samples", {"model": "m"}) == 1
    assert registry.get_sample_value("medserve_drift_score", {"model": "m", "feature": "x", "stat": "psi"}) is None  # < min_samples
    assert b"medserve_drift_score" in generate_latest(registry)


def test_input_features_read_spacing_and_thickness_from_functional_groups() -> None:
    """pydicom-data's Enhanced CT keeps Pixel Spacing and Slice Thickness only in its Shared
    Functional Groups (Pixel Measures): drift reads them there, as export does."""
    import pydicom

    from devtools.testdata import pydicom_test_file
    from gateway.drift import input_features

    header = pydicom.dcmread(pydicom_test_file("eCT_Supplemental.dcm"), stop_before_pixels=True)
    assert "PixelSpacing" not in header and "SliceThickness" not in header
    features = input_features("volume", np.zeros((1, 2, 4, 4), np.float32), header, slices=2).numeric
    assert features["volume.pixel_spacing_mm"] == pytest.approx(0.388672)
    assert features["volume.slice_thickness_mm"] == pytest.approx(10.0)
    assert (features["volume.rows"], features["volume.columns"], features["volume.slices"]) == (512, 512, 2)
    # a single-frame header is read at its top level, as before
    single = pydicom.dcmread(pydicom_test_file("CT_small.dcm"), stop_before_pixels=True)
    features = input_features("image", np.zeros((1, 4, 4), np.float32), single).numeric
    assert features["image.pixel_spacing_mm"] == pytest.approx(float(single.PixelSpacing[0]))
    assert features["image.slice_thickness_mm"] == pytest.approx(float(single.SliceThickness))


@pytest.mark.parametrize("value", [-5.0, 0.0, 0.5, 1.0, 2.5, 4.0, 9.0, float("nan"), np.float32(1.5), 3, np.array([2.0])])
def test_a_single_value_counts_as_its_histogram(value) -> None:
    """One value per request (a class probability, the rows): the window holds the histogram
    ``histogram()`` gives that value, end bins for values outside the edges or NaN, and the
    scores are those of the histograms added one by one."""
    reference = HistogramReference(np.array([0.0, 1.0, 2.0, 4.0]), np.array([5.0, 3.0, 2.0]))
    monitor = DriftMonitor("m", {"f": reference}, {}, window_size=3, min_samples=1)
    for _ in range(4):  # one more than the window: the oldest leaves again
        monitor.observe({"f": value}, {})
    window = monitor._numeric["f"]
    expected = histogram(np.ravel(np.asarray(value, dtype=float)), reference.edges)
    assert [w.tolist() for w in window.window] == [expected.tolist()] * 3
    assert window.current.tolist() == (expected * 3).tolist()


class _Clock:
    """Wall-clock seconds that a test moves by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _history_monitor(clock: _Clock) -> DriftMonitor:
    return DriftMonitor("m", {"x": HistogramReference(np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0]))}, {}, window_size=10, min_samples=2, clock=clock)


def test_the_history_holds_one_point_per_minute_the_last_computed_scores_of_it() -> None:
    clock = _Clock(1_000_000 * 60.0)
    monitor = _history_monitor(clock)
    monitor.observe({"x": 0.5}, {})
    assert monitor.history() == []  # below min_samples: nothing is scored
    monitor.observe({"x": 0.5}, {})  # the first scores of this minute, computed by the observation
    [(at, first)] = monitor.history()
    assert at == clock.now and set(first) == {"x"}

    clock.now += 30
    monitor.observe({"x": 1.5}, {})
    assert len(monitor.history()) == 1  # same minute: an observation computes nothing
    now = monitor.scores()
    assert monitor.history() == [(clock.now, now)]  # asked for: the minute's point is the newest scores

    clock.now += 45  # the next minute: its first observation makes its point
    monitor.observe({"x": 1.5}, {})
    assert [at for at, _ in monitor.history()] == [clock.now - 45, clock.now]


def test_the_history_keeps_the_last_hour_oldest_first() -> None:
    clock = _Clock(1_000_000 * 60.0)
    monitor = _history_monitor(clock)
    for minute in range(90):
        monitor.observe({"x": 0.5}, {})
        clock.now += 60
    points = [at for at, _ in monitor.history()]
    assert len(points) == 59  # the 60 newest minutes, the oldest of them now just over an hour old
    assert points == sorted(points) and clock.now - points[0] <= 3600
    clock.now += 3600
    assert monitor.history() == []
