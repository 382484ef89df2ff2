"""The job metrics of the gateway: the store's gauges read at scrape time, each attempt's
outcome, a job's wait and a DIMSE series' assembly time, on a real SQLite job store and a real
:class:`jobs.JobWorker`."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Iterator

import pytest
from prometheus_client import REGISTRY, CollectorRegistry

from gateway.job_runner import JobAttemptMetrics
from gateway.metrics import JobStoreMetrics
from jobs import Job, JobOutcome, JobStore, JobWorker, database_url, make_engine
from jobs.received import COMPLETE, ReceivedStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[JobStore]:
    engine = make_engine(database_url(tmp_path))
    yield JobStore(engine)
    engine.dispose()


def writes_answer(tmp_path: Path):
    def run(job: Job) -> JobOutcome:
        result = tmp_path / job.id / "result"
        result.parent.mkdir(parents=True, exist_ok=True)
        result.write_bytes(b"{}")
        return JobOutcome(str(result), "application/json")

    return run


def fails(job: Job) -> JobOutcome:
    raise RuntimeError("the model server went away")


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_jobs_by_state_and_the_oldest_queued_age_are_read_from_the_store_at_scrape_time(store: JobStore, tmp_path: Path) -> None:
    collector = JobStoreMetrics()
    registry = CollectorRegistry()
    registry.register(collector)
    assert registry.get_sample_value("medserve_jobs", {"state": "queued"}) is None  # not watching a store yet

    worker = JobWorker(store, writes_answer(tmp_path), "w")
    collector.watch(store, [worker])
    assert registry.get_sample_value("medserve_jobs_oldest_queued_age_seconds") == 0  # none queued
    for _ in range(3):
        store.submit("m", "rest", str(tmp_path / "in"))
    worker.run_once()
    counts = {state: registry.get_sample_value("medserve_jobs", {"state": state}) for state in store.counts_by_state()}
    assert counts == {state: float(count) for state, count in store.counts_by_state().items()}
    assert (counts["queued"], counts["done"]) == (2, 1)
    age = registry.get_sample_value("medserve_jobs_oldest_queued_age_seconds")
    assert 0 <= age <= store.oldest_queued_age_s()
    assert registry.get_sample_value("medserve_job_webhook_failures_total") == 0


def test_webhook_failures_are_the_workers_own_count(store: JobStore, tmp_path: Path) -> None:
    collector = JobStoreMetrics()
    registry = CollectorRegistry()
    registry.register(collector)
    worker = JobWorker(store, writes_answer(tmp_path), "w", webhook_timeout_s=0.5)
    collector.watch(store, [worker])
    store.submit("m", "rest", str(tmp_path / "in"), webhook_url="http://127.0.0.1:9/closed")  # the discard port: refused
    worker.run_once()
    assert worker.webhook_failures == 1
    assert registry.get_sample_value("medserve_job_webhook_failures_total") == 1


def test_each_attempt_counts_its_outcome_and_the_first_its_wait(store: JobStore, tmp_path: Path) -> None:
    observe = JobAttemptMetrics(ReceivedStore(store.engine))
    before = {state: sample("medserve_job_outcomes_total", model="metrics_m", state=state) for state in ("done", "queued", "failed")}
    waits = sample("medserve_job_stage_seconds_count", model="metrics_m", stage="wait")
    store.submit("metrics_m", "rest", str(tmp_path / "a"))
    store.submit("metrics_m", "rest", str(tmp_path / "b"), max_attempts=2)
    JobWorker(store, writes_answer(tmp_path), "w", on_attempt=observe).run_once()
    failing = JobWorker(store, fails, "w", on_attempt=observe)
    assert failing.run_once().state == "queued"  # retried: attempts left
    assert failing.run_once().state == "failed"
    after = {state: sample("medserve_job_outcomes_total", model="metrics_m", state=state) for state in before}
    assert {state: after[state] - before[state] for state in before} == {"done": 1, "queued": 1, "failed": 1}
    assert sample("medserve_job_stage_seconds_count", model="metrics_m", stage="wait") - waits == 2  # first attempts only


def test_a_dimse_job_observes_its_series_assembly_time(store: JobStore, tmp_path: Path) -> None:
    received = ReceivedStore(store.engine)
    first = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.timezone.utc)
    for index, at in enumerate((first, first + dt.timedelta(seconds=4))):
        received.record_instance(
            sop_instance_uid=f"1.2.3.4.{index}", series_uid="1.2.3.4", study_uid="1.2.3", path=tmp_path / f"{index}.dcm",
            size_bytes=100, calling_ae="PACS", called_ae="MEDSERVE", transfer_syntax="1.2.840.10008.1.2.1", modality="CT", received_at=at,
        )
    assert received.mark("1.2.3.4", COMPLETE)
    series = received.series("1.2.3.4")
    expected = (series.completed_at - series.first_received_at).total_seconds()
    count = sample("medserve_job_stage_seconds_count", model="metrics_dimse", stage="assembly")
    total = sample("medserve_job_stage_seconds_sum", model="metrics_dimse", stage="assembly")
    store.submit("metrics_dimse", "dimse", str(tmp_path), study_uid="1.2.3", series_uid="1.2.3.4")
    JobWorker(store, writes_answer(tmp_path), "w", on_attempt=JobAttemptMetrics(received)).run_once()
    assert sample("medserve_job_stage_seconds_count", model="metrics_dimse", stage="assembly") - count == 1
    assert sample("medserve_job_stage_seconds_sum", model="metrics_dimse", stage="assembly") - total == pytest.approx(expected)
