"""Input and prediction drift: a sliding window of recent requests versus the reference
statistics that export measured on the calibration data and stored in the model config.

Math (also in the README):

- Every feature is compared as a distribution over **fixed bins** (the reference's bin edges,
  with the outermost edges open so out-of-range values land in the end bins), or over
  categories (plus ``other``) for DICOM metadata such as Modality.
- **PSI** (population stability index): Σ_b (p_b − q_b) · ln(p_b / q_b), with p the window's
  and q the reference's bin probabilities, each floored at ε = 1e-4 so that empty bins stay finite.
  Conventional reading: < 0.1 stable, 0.1–0.25 moderate shift, > 0.25 significant shift.
- **KS**: max_b |P_b − Q_b| over the cumulative bin probabilities (the Kolmogorov–Smirnov
  statistic on binned data); not computed for categorical features.
- The window holds the last ``window_size`` requests' contributions: a per-request histogram
  of preprocessed input intensities (all voxels), and one value per request for scalar
  features (e.g. a class probability or a mask volume). Scores are published once the
  window holds ``min_samples`` requests.
- An observation only updates running sums (O(bins) per feature); the scores themselves are
  computed when Prometheus scrapes ``/metrics`` (:class:`DriftPublisher`), not per request.
- Each monitor keeps a **history** of its scores for the last hour: at most one point per wall-clock
  minute (:data:`HISTORY_POINTS`), the scores last computed in that minute. Scores are computed when
  scraped or asked for (``GET /v1/models/{name}/drift``), and by an observation that finds no point
  of its minute yet, so that traffic alone fills the history at one computation a minute.
"""

from __future__ import annotations

import bisect
import math
import time
from collections import Counter as TallyCounter
from collections import deque
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
from prometheus_client import REGISTRY, Gauge
from prometheus_client.metrics_core import GaugeMetricFamily

from preprocessing.attributes import header_text, header_value
from preprocessing.frames import frame_headers, is_enhanced

from .metrics import multiprocess_mode

EPSILON = 1e-4
#: Points a monitor's history keeps: one per minute, the last hour.
HISTORY_POINTS = 60
#: The period of one history point, in seconds.
HISTORY_PERIOD_S = 60.0


def _probabilities(counts: np.ndarray) -> np.ndarray:
    total = float(counts.sum())
    p = counts / total if total > 0 else np.full(counts.shape, 1.0 / len(counts))
    return np.maximum(p, EPSILON)


def psi(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    q, p = _probabilities(np.asarray(reference_counts, float)), _probabilities(np.asarray(current_counts, float))
    return float(np.sum((p - q) * np.log(p / q)))


def ks(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    ref = np.asarray(reference_counts, float)
    cur = np.asarray(current_counts, float)
    ref_cdf = np.cumsum(ref) / max(ref.sum(), 1e-12)
    cur_cdf = np.cumsum(cur) / max(cur.sum(), 1e-12)
    return float(np.max(np.abs(ref_cdf - cur_cdf)))


def histogram(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts of ``values`` in the bins of ``edges``; values outside land in the end bins."""
    index = np.clip(np.searchsorted(edges, np.ravel(values), side="right") - 1, 0, len(edges) - 2)
    return np.bincount(index, minlength=len(edges) - 1).astype(np.float64)


def uniform_histogram(values: np.ndarray, low: float, high: float, bins: int) -> np.ndarray:
    """:func:`histogram` over ``bins`` equal bins from ``low`` to ``high``, by arithmetic instead
    of a binary search (~10x faster for an image's worth of values); the two differ only for
    values within float rounding of an inner edge."""
    index = (np.ravel(values) - low) * (bins / (high - low))
    np.clip(index, 0, bins - 1, out=index)
    return np.bincount(index.astype(np.intp), minlength=bins).astype(np.float64)


@dataclass(frozen=True)
class HistogramReference:
    """A numeric feature's reference: bin ``edges`` (n + 1) and ``counts`` (n)."""

    edges: np.ndarray
    counts: np.ndarray

    @classmethod
    def from_dict(cls, data: Mapping[str, Sequence[float]]) -> "HistogramReference":
        edges, counts = np.asarray(data["edges"], float), np.asarray(data["counts"], float)
        if edges.ndim != 1 or len(edges) != len(counts) + 1 or len(counts) < 2 or np.any(np.diff(edges) <= 0):
            raise ValueError("a histogram reference needs increasing edges and len(edges) == len(counts) + 1 >= 3")
        return cls(edges, counts)


class _NumericWindow:
    """Per-request histograms of the last ``window_size`` requests, with their running sum so
    that an observation costs O(bins), not O(window × bins)."""

    def __init__(self, reference: HistogramReference, window_size: int) -> None:
        self.reference = reference
        # Each request's histogram. Most features are one value per request: its bin is found
        # by a bisect of the edges, a fraction of the cost of numpy's histogram of one value.
        self.window: deque[np.ndarray] = deque(maxlen=window_size)
        self.current = np.zeros(len(reference.counts))
        edges = reference.edges
        self._edges = edges.tolist()
        widths = np.diff(edges)
        self._uniform = bool(np.allclose(widths, widths[0], rtol=1e-6, atol=0.0))

    def add(self, values: np.ndarray | float) -> None:
        """One request's contribution: its own histogram, normalized so that a big volume
        weighs as much as a small image."""
        if isinstance(values, (float, int)) or np.size(values) == 1:
            self._add_one(float(values) if isinstance(values, (float, int)) else float(np.ravel(values)[0]))
            return
        edges = self.reference.edges
        if self._uniform and np.size(values) > 64:
            counts = uniform_histogram(values, float(edges[0]), float(edges[-1]), len(edges) - 1)
        else:
            counts = histogram(values, edges)
        counts /= max(counts.sum(), 1.0)
        self._evict()
        self.window.append(counts)
        self.current += counts

    def _add_one(self, value: float) -> None:
        """:meth:`add` of a single value: its histogram is a 1 in its bin as :func:`histogram`
        finds it (outside the edges, or NaN, the end bins)."""
        index = min(max(bisect.bisect_right(self._edges, value) - 1, 0), len(self._edges) - 2)
        counts = np.zeros(len(self._edges) - 1)
        counts[index] = 1.0
        self._evict()
        self.window.append(counts)
        self.current[index] += 1.0

    def _evict(self) -> None:
        if len(self.window) == self.window.maxlen:
            self.current -= self.window[0]

    def scores(self) -> dict[str, float]:
        current = np.maximum(self.current, 0.0)  # running sums may drift a hair below zero
        return {"psi": psi(self.reference.counts, current), "ks": ks(self.reference.counts, current)}


class _CategoricalWindow:
    def __init__(self, reference: Mapping[str, float], window_size: int) -> None:
        self.categories = sorted(reference) + ["other"]
        self.reference = np.array([float(reference[c]) for c in sorted(reference)] + [0.0])
        self.window: deque[str] = deque(maxlen=window_size)
        self.tally: TallyCounter[str] = TallyCounter()

    def add(self, value: str) -> None:
        value = value if value in self.categories[:-1] else "other"
        if len(self.window) == self.window.maxlen:
            self.tally[self.window[0]] -= 1
        self.window.append(value)
        self.tally[value] += 1

    def scores(self) -> dict[str, float]:
        return {"psi": psi(self.reference, np.array([self.tally[c] for c in self.categories], float))}


class DriftMonitor:
    """Drift of one model's inputs and predictions over a sliding window of requests."""

    def __init__(
        self,
        model: str,
        numeric: Mapping[str, HistogramReference],
        categorical: Mapping[str, Mapping[str, float]],
        window_size: int = 200,
        min_samples: int = 20,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``clock``: wall-clock seconds since the epoch, which dates the history's points."""
        self.model = model
        self._clock = clock
        #: (seconds since the epoch, scores) per minute with scores, oldest first.
        self._history: deque[tuple[float, dict[str, dict[str, float]]]] = deque(maxlen=HISTORY_POINTS)
        self.min_samples = min_samples
        self._numeric = {name: _NumericWindow(ref, window_size) for name, ref in numeric.items()}
        self._categorical = {name: _CategoricalWindow(ref, window_size) for name, ref in categorical.items()}
        self.samples = 0
        self.window_size = window_size

    @property
    def features(self) -> list[str]:
        return sorted([*self._numeric, *self._categorical])

    def observe(self, numeric: Mapping[str, np.ndarray | float], categorical: Mapping[str, str]) -> None:
        """Add one request's features (unknown names are ignored)."""
        for name, values in numeric.items():
            if name in self._numeric:
                self._numeric[name].add(values)
        for name, value in categorical.items():
            if name in self._categorical:
                self._categorical[name].add(value)
        self.samples = min(self.samples + 1, self.window_size)
        if not self._history or self._minute(self._history[-1][0]) != self._minute(self._clock()):
            self.scores()  # the first observation of a minute gives the history its point

    def scores(self) -> dict[str, dict[str, float]]:
        """PSI (and KS for numeric features) per feature; empty until ``min_samples`` requests.
        Scores that are computed become the history's point of the current minute."""
        if self.samples < self.min_samples:
            return {}
        computed = {name: window.scores() for name, window in (*self._numeric.items(), *self._categorical.items()) if window.window}
        now = self._clock()
        if self._history and self._minute(self._history[-1][0]) == self._minute(now):
            self._history[-1] = (now, computed)
        else:
            self._history.append((now, computed))
        return computed

    def history(self) -> list[tuple[float, dict[str, dict[str, float]]]]:
        """(seconds since the epoch, scores) of the last hour, at most one point per minute,
        oldest first; empty until scores were computed (``min_samples`` requests)."""
        since = self._clock() - HISTORY_POINTS * HISTORY_PERIOD_S
        return [(at, scores) for at, scores in self._history if at > since]

    @staticmethod
    def _minute(seconds: float) -> int:
        return int(seconds // HISTORY_PERIOD_S)


class DriftPublisher:
    """``medserve_drift_score`` and ``medserve_drift_window_samples`` of every tracked model.

    One process: a Prometheus collector, computing the scores at scrape time (every 15 s or
    so) rather than on each request. Several worker processes (:mod:`gateway.server`): each
    worker watches the share of the traffic it serves and writes its scores, at most every
    ``interval_s``, to prometheus-client's multiprocess files — scores as the most recently
    written value of any worker, window sizes summed over live workers. A model's newest
    monitor replaces an older one (a re-exported model).
    """

    def __init__(self, interval_s: float = 1.0) -> None:
        self.interval_s = interval_s
        self._monitors: dict[str, DriftMonitor] = {}
        self._written: dict[str, float] = {}
        self._gauges: tuple[Gauge, Gauge] | None = None

    def track(self, monitor: DriftMonitor) -> DriftMonitor:
        self._monitors[monitor.model] = monitor
        return monitor

    def observed(self, monitor: DriftMonitor) -> None:
        """After ``monitor`` observed a request: with several workers, write its scores to the
        shared files when the last write is ``interval_s`` old. One process: nothing to do."""
        if not multiprocess_mode():
            return
        now = time.monotonic()
        if now - self._written.get(monitor.model, -math.inf) < self.interval_s:
            return
        self._written[monitor.model] = now
        if self._gauges is None:
            score_family, samples_family = self._families()
            self._gauges = (
                Gauge(score_family.name, score_family.documentation, ["model", "feature", "stat"], registry=None, multiprocess_mode="mostrecent"),
                Gauge(samples_family.name, samples_family.documentation, ["model"], registry=None, multiprocess_mode="livesum"),
            )
        score, samples = self._gauges
        samples.labels(monitor.model).set(monitor.samples)
        for feature, stats in monitor.scores().items():
            for stat, value in stats.items():
                score.labels(monitor.model, feature, stat).set(value)

    def _families(self) -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                "medserve_drift_score",
                "Drift of a model's recent inputs/predictions from its export reference (PSI or KS over fixed bins).",
                labels=["model", "feature", "stat"],
            ),
            GaugeMetricFamily("medserve_drift_window_samples", "Requests in a model's drift window.", labels=["model"]),
        )

    def describe(self):
        return list(self._families())

    def collect(self):
        score, samples = self._families()
        for model, monitor in sorted(self._monitors.items()):
            samples.add_metric([model], monitor.samples)
            for feature, stats in sorted(monitor.scores().items()):
                for stat, value in stats.items():
                    score.add_metric([model, feature, stat], value)
        return [score, samples]


#: The gateway's publisher, in the default registry that ``/metrics`` serves.
DRIFT_PUBLISHER = DriftPublisher()
REGISTRY.register(DRIFT_PUBLISHER)


#: Geometry features the gateway can observe from a DICOM header, by reference key.
_GEOMETRY = ("rows", "columns", "pixel_spacing_mm", "slice_thickness_mm", "slices")
#: At most this many voxels of a prepared input are binned per observation (strided sample).
MAX_INTENSITY_SAMPLES = 65_536


@dataclass
class DriftObservation:
    """One image's (or one volume's) features, named as in :func:`monitor_from_reference`."""

    numeric: dict[str, np.ndarray | float]
    categorical: dict[str, str]


def monitor_from_reference(model: str, reference: Mapping, window_size: int = 200, min_samples: int = 20) -> DriftMonitor:
    """A monitor for export's ``drift_reference`` document (see ``export/drift_reference.py``).

    Features: ``<input>.intensity``, ``<input>.<geometry>``, ``<input>.modality``,
    ``<input>.manufacturer``, ``prediction.<label>`` and ``prediction.top_label``.
    """
    numeric: dict[str, HistogramReference] = {}
    categorical: dict[str, Mapping[str, float]] = {}
    for name, entry in reference.get("inputs", {}).items():
        if "intensity" in entry:
            numeric[f"{name}.intensity"] = HistogramReference.from_dict(entry["intensity"])
        for key in _GEOMETRY:
            if key in entry.get("geometry", {}):
                numeric[f"{name}.{key}"] = HistogramReference.from_dict(entry["geometry"][key])
        if entry.get("modality_mix"):
            categorical[f"{name}.modality"] = entry["modality_mix"]
        if entry.get("manufacturer_mix"):
            categorical[f"{name}.manufacturer"] = entry["manufacturer_mix"]
    predictions = reference.get("predictions", {})
    for label, histogram_data in predictions.get("classes", {}).items():
        numeric[f"prediction.{label}"] = HistogramReference.from_dict(histogram_data)
    if predictions.get("top_label_mix"):
        categorical["prediction.top_label"] = predictions["top_label_mix"]
    return DriftMonitor(model, numeric, categorical, window_size=window_size, min_samples=min_samples)


def input_features(input_name: str, prepared: np.ndarray, header, slices: int = 1) -> DriftObservation:
    """Features of one prepared input and its DICOM header (values, not identities).

    One call is one observation: one 2D image, or one volume, whose ``slices`` counts its
    frames (a series of single-frame instances and one enhanced multi-frame instance of the
    same volume count alike; export's reference counts the same way). Pixel Spacing (mm) and
    Slice Thickness (mm) of an enhanced multi-frame header are read from its functional groups
    (:func:`geometry_header`), where that IOD keeps them.
    """
    flat = prepared.reshape(-1)
    stride = max(1, flat.size // MAX_INTENSITY_SAMPLES)
    numeric: dict[str, np.ndarray | float] = {f"{input_name}.intensity": flat[::stride], f"{input_name}.slices": float(slices)}
    geometry = geometry_header(header)
    for feature, keyword in (("rows", "Rows"), ("columns", "Columns"), ("pixel_spacing_mm", "PixelSpacing"), ("slice_thickness_mm", "SliceThickness")):
        value = _header_number(geometry, keyword)
        if value is not None:
            numeric[f"{input_name}.{feature}"] = value
    categorical = {
        f"{input_name}.modality": header_text(header, "Modality"),
        f"{input_name}.manufacturer": header_text(header, "Manufacturer"),
    }
    return DriftObservation(numeric, categorical)


def geometry_header(header):
    """The header to read geometry from: ``header`` itself, or for an enhanced multi-frame
    instance its first frame flattened by :func:`preprocessing.frames.frame_headers` (Shared
    and Per-Frame Functional Groups: Pixel Measures carry Pixel Spacing and Slice Thickness).
    A malformed functional group leaves ``header`` as it is: drift never fails a request."""
    try:
        if is_enhanced(header):
            return frame_headers(header, 1)[0]
    except (TypeError, ValueError, IndexError, KeyError, AttributeError):
        pass
    return header


def _header_number(header, keyword: str) -> float | None:
    """The (first) value of a numeric header element, or None when it is absent, empty or not
    a finite number: drift watches traffic, it never fails a request that was answered."""
    try:
        value = header_value(header, keyword)
        number = float(value[0] if isinstance(value, tuple) else value)
    except (TypeError, ValueError, IndexError, KeyError, OverflowError):
        return None
    return number if math.isfinite(number) and number != 0.0 else None


def merge(*observations: DriftObservation) -> DriftObservation:
    merged = DriftObservation({}, {})
    for observation in observations:
        merged.numeric.update(observation.numeric)
        merged.categorical.update(observation.categorical)
    return merged
