"""Prometheus metrics of the gateway (prometheus-client, default registry).

With several worker processes (``PROMETHEUS_MULTIPROC_DIR`` set, see :mod:`gateway.server`)
the values live in that directory's files and :func:`exposition` adds the workers' up.
"""

from __future__ import annotations

import os

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

_LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0)

REQUEST_LATENCY = Histogram(
    "medserve_request_duration_seconds",
    "End-to-end HTTP request latency.",
    ["model", "route", "status_class"],
    buckets=_LATENCY_BUCKETS_S,
)
STAGE_LATENCY = Histogram(
    "medserve_stage_duration_seconds",
    "Time per pipeline stage of a prediction (receive, decode, preprocess, infer, postprocess).",
    ["model", "stage"],
    buckets=_LATENCY_BUCKETS_S,
)
IN_FLIGHT = Gauge("medserve_requests_in_flight", "Predictions currently being processed.", multiprocess_mode="livesum")
INPUTS = Counter(
    "medserve_inputs_total",
    "DICOM instances received, by model and input mix (label values are bounded).",
    ["model", "modality", "manufacturer", "transfer_syntax"],
)
PATCHES_PER_REQUEST = Histogram(
    "medserve_patches_per_request", "Sliding-window patches per prediction.", ["model"], buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
)
BATCHES_PER_REQUEST = Histogram(
    "medserve_batches_per_request", "Triton requests (batches) per prediction.", ["model"], buckets=(1, 2, 4, 8, 16, 32, 64, 128)
)
ERRORS = Counter("medserve_errors_total", "Error answers by stable error code.", ["code"])
REJECTIONS = Counter("medserve_rejections_total", "Requests refused by admission control.", ["reason"])
INPUT_QUALITY = Counter(
    "medserve_input_quality_total",
    "Inputs outside their model's input quality gate, by model, feature (a fixed set) and action (warn|reject).",
    ["model", "feature", "action"],
)


def multiprocess_mode() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def exposition() -> bytes:
    """The ``/metrics`` text: this process's registry, or every worker's files added up."""
    if not multiprocess_mode():
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return generate_latest(registry)


class BoundedValues:
    """Admits at most ``limit`` distinct label values; later newcomers become ``"other"``, so a
    client sending arbitrary Manufacturer strings cannot blow up the metric's cardinality."""

    def __init__(self, limit: int = 32) -> None:
        self.limit = limit
        self._seen: set[str] = set()

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        if len(self._seen) >= self.limit:
            return "other"
        self._seen.add(value)
        return value


MODALITY_VALUES = BoundedValues(24)
MANUFACTURER_VALUES = BoundedValues(32)
TRANSFER_SYNTAX_VALUES = BoundedValues(48)
