"""Prometheus metrics of the gateway (prometheus-client, default registry).

With several worker processes (``PROMETHEUS_MULTIPROC_DIR`` set, see :mod:`gateway.server`)
the values live in that directory's files and :func:`exposition` adds the workers' up.

The job store's gauges (jobs by state, the oldest queued job's age) and the webhook failures of
this process's job workers are read when Prometheus scrapes (:data:`JOB_STORE_METRICS`), not per
request. Every replica sharing a PostgreSQL store reports the same store: dashboards take
``max``, never ``sum``, of ``medserve_jobs`` and ``medserve_jobs_oldest_queued_age_seconds``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from jobs import JobStore, JobWorker
from jobs.delivery import DeliveryStore

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

#: A job's stages last from milliseconds (a classifier) to tens of minutes (a queue backlog).
_JOB_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
JOB_STAGE_LATENCY = Histogram(
    "medserve_job_stage_seconds",
    "Seconds per stage of a job: wait (submitted to first claimed), assembly (a DIMSE series' first instance to complete), "
    "inference (the model's run), export (writing the result).",
    ["model", "stage"],
    buckets=_JOB_BUCKETS_S,
)
JOB_OUTCOMES = Counter(
    "medserve_job_outcomes_total", "Job attempts by model and the state they left the job in (done, failed, queued: retried).", ["model", "state"]
)

DELIVERY_ATTEMPTS = Counter(
    "medserve_delivery_attempts_total",
    "Attempts to send a job's outputs to a destination, by the outcome they left the delivery in "
    "(delivered, retry: pending again after the backoff, failed_export: dead-lettered).",
    ["destination", "outcome"],
)
DELIVERY_LATENCY = Histogram(
    "medserve_delivery_seconds", "Seconds one delivery attempt took (every output of a job to one destination).", ["destination"],
    buckets=_JOB_BUCKETS_S,
)

_log = logging.getLogger("medserve.metrics")


class JobStoreMetrics(Collector):
    """``medserve_jobs{state}``, ``medserve_jobs_oldest_queued_age_seconds`` (0 when none is
    queued) from the job store, and ``medserve_job_webhook_failures_total`` of this process's
    workers, at scrape time (two indexed queries); nothing until :meth:`watch` is called."""

    def __init__(self) -> None:
        self.store: JobStore | None = None
        self.workers: Sequence[JobWorker] = ()

    def watch(self, store: JobStore, workers: Sequence[JobWorker]) -> None:
        self.store, self.workers = store, workers

    def describe(self) -> list:
        return [
            GaugeMetricFamily("medserve_jobs", "Jobs in the store by state.", labels=["state"]),
            GaugeMetricFamily("medserve_jobs_oldest_queued_age_seconds", "Seconds since the oldest queued job was submitted (0: none queued)."),
            GaugeMetricFamily("medserve_deliveries", "Deliveries of job outputs by state (failed_export: the dead-letter list).", labels=["state"]),
            CounterMetricFamily("medserve_job_webhook_failures", "Job webhooks that failed or timed out."),
        ]

    def collect(self) -> Iterator:
        store = self.store
        if store is None:
            return
        try:
            counts, oldest = store.counts_by_state(), store.oldest_queued_age_s()
            delivery_counts = DeliveryStore(store.engine).counts_by_state()
        except Exception as exc:  # noqa: BLE001 - the database away: no job series this scrape, the rest still served
            _log.warning("job store metrics unavailable", extra={"error_type": type(exc).__name__})
        else:
            jobs, age, deliveries, _ = self.describe()
            for state, count in counts.items():
                jobs.add_metric([state], count)
            age.add_metric([], max(oldest or 0.0, 0.0))
            for state, count in delivery_counts.items():
                deliveries.add_metric([state], count)
            yield jobs
            yield age
            yield deliveries
        failures = CounterMetricFamily("medserve_job_webhook_failures", "Job webhooks that failed or timed out.")
        failures.add_metric([], sum(worker.webhook_failures for worker in self.workers))
        yield failures


JOB_STORE_METRICS = JobStoreMetrics()
REGISTRY.register(JOB_STORE_METRICS)


def multiprocess_mode() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def exposition() -> bytes:
    """The ``/metrics`` text: this process's registry, or every worker's files added up."""
    if not multiprocess_mode():
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    registry.register(JOB_STORE_METRICS)
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
