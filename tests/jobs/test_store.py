"""The job store, on SQLite and on a real PostgreSQL: submit, claim under a lease by exactly
one worker, renew, complete, fail with bounded attempts, idempotency keys, filters and
retention. Lease expiry is driven by the store's injectable clock, never by waiting."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from jobs.db import make_engine
from jobs.store import LEASE_EXPIRED, JobStore

from .conftest import Clock

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(engine, clock: Clock) -> JobStore:
    return JobStore(engine, clock=clock)


def submit(store: JobStore, model: str = "m", **kwargs):
    job, created = store.submit(model, kwargs.pop("source", "rest"), "/work/jobs/x/input", **kwargs)
    assert created
    return job


def test_a_submitted_job_is_queued_with_its_fields(store: JobStore, clock: Clock) -> None:
    job = submit(store, "chest", study_uid="1.2.3", series_uid="1.2.3.4", webhook_url="http://hook", output_format="seg", max_attempts=5)
    assert len(job.id) == 32 and int(job.id, 16) >= 0
    assert (job.state, job.model, job.source, job.attempts, job.max_attempts) == ("queued", "chest", "rest", 0, 5)
    assert (job.study_uid, job.series_uid, job.webhook_url, job.output_format) == ("1.2.3", "1.2.3.4", "http://hook", "seg")
    assert job.created_at == clock.now and job.created_at.tzinfo is not None
    assert store.get(job.id) == job
    assert store.get("0" * 32) is None


def test_an_unknown_source_is_refused(store: JobStore) -> None:
    with pytest.raises(ValueError, match="source"):
        store.submit("m", "ftp", "/in")


def test_claim_takes_the_oldest_queued_job_under_a_lease(store: JobStore, clock: Clock) -> None:
    first = submit(store)
    clock.advance(1)
    submit(store)
    claimed = store.claim("worker-a", lease_s=30)
    assert claimed is not None and claimed.id == first.id
    assert (claimed.state, claimed.attempts, claimed.lease_owner) == ("running", 1, "worker-a")
    assert claimed.lease_expires_at == clock.now + timedelta(seconds=30)
    assert claimed.started_at == clock.now


def test_claim_returns_none_when_nothing_is_claimable(store: JobStore) -> None:
    assert store.claim("w", 30) is None
    submit(store)
    assert store.claim("w", 30) is not None
    assert store.claim("other", 30) is None  # the only job is held under a live lease


def test_complete_stores_the_answer_and_releases_the_lease(store: JobStore, clock: Clock) -> None:
    job = submit(store)
    store.claim("w", 30)
    clock.advance(2)
    assert store.complete(job.id, "w", "/work/jobs/x/result", "application/json", {"inference": 12.5})
    done = store.get(job.id)
    assert (done.state, done.result_path, done.result_media_type, done.timings_ms) == ("done", "/work/jobs/x/result", "application/json", {"inference": 12.5})
    assert done.finished_at == clock.now and done.lease_owner is None and done.lease_expires_at is None


def test_a_worker_that_lost_its_lease_cannot_complete_renew_or_fail(store: JobStore, clock: Clock) -> None:
    job = submit(store)
    store.claim("dead", 10)
    clock.advance(11)
    retaken = store.claim("alive", 10)
    assert retaken.id == job.id and retaken.attempts == 2 and retaken.lease_owner == "alive"
    assert not store.renew(job.id, "dead", 10)
    assert not store.complete(job.id, "dead", "/r", "application/json", {})
    assert store.fail(job.id, "dead", "inference_failed", "x", {}, retryable=False) == store.get(job.id)
    assert store.get(job.id).state == "running" and store.get(job.id).lease_owner == "alive"
    assert store.complete(job.id, "alive", "/r", "application/json", {})


def test_renew_keeps_a_long_job_from_being_taken(store: JobStore, clock: Clock) -> None:
    job = submit(store)
    store.claim("w", 10)
    for _ in range(3):
        clock.advance(8)
        assert store.renew(job.id, "w", 10)
        assert store.claim("other", 10) is None
    assert store.get(job.id).lease_expires_at == clock.now + timedelta(seconds=10)


def test_a_retryable_failure_requeues_until_attempts_are_spent(store: JobStore) -> None:
    job = submit(store, max_attempts=3)
    for attempt in (1, 2):
        claimed = store.claim("w", 30)
        assert claimed.attempts == attempt
        after = store.fail(job.id, "w", "triton_unavailable", "Triton is not reachable", {"inference": 1.0}, retryable=True)
        assert (after.state, after.error_code) == ("queued", "triton_unavailable")
    store.claim("w", 30)
    final = store.fail(job.id, "w", "triton_unavailable", "Triton is not reachable", {}, retryable=True)
    assert (final.state, final.attempts, final.error_code, final.error_message) == ("failed", 3, "triton_unavailable", "Triton is not reachable")
    assert final.finished_at is not None
    assert store.claim("w", 30) is None


def test_a_client_error_fails_at_once(store: JobStore) -> None:
    job = submit(store, max_attempts=3)
    store.claim("w", 30)
    failed = store.fail(job.id, "w", "input_mismatch", "series do not match", {}, retryable=False)
    assert (failed.state, failed.attempts, failed.error_code) == ("failed", 1, "input_mismatch")


def test_a_dead_workers_job_is_retried_by_another_then_failed_when_attempts_are_spent(store: JobStore, clock: Clock) -> None:
    job = submit(store, max_attempts=2)
    assert store.claim("dies-1", 5).attempts == 1
    clock.advance(6)
    assert store.claim("dies-2", 5).attempts == 2
    clock.advance(6)
    assert store.claim("third", 5) is None  # nothing to run: the job has used its attempts
    failed = store.get(job.id)
    assert (failed.state, failed.error_code, failed.lease_owner) == ("failed", LEASE_EXPIRED, None)


def test_an_idempotency_key_returns_the_existing_job(store: JobStore) -> None:
    first, created = store.submit("m", "rest", "/in/1", idempotency_key="key-1")
    again, created_again = store.submit("m", "rest", "/in/2", idempotency_key="key-1")
    other, created_other = store.submit("m", "rest", "/in/3", idempotency_key="key-2")
    assert created and not created_again and created_other
    assert again == first and other.id != first.id
    assert len(store.list()) == 2


def test_concurrent_submits_with_one_key_make_one_job(store: JobStore) -> None:
    results = []
    barrier = threading.Barrier(4)

    def submit_once() -> None:
        barrier.wait()
        results.append(store.submit("m", "rest", "/in", idempotency_key="same"))

    threads = [threading.Thread(target=submit_once) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({job.id for job, _ in results}) == 1
    assert sorted(created for _, created in results) == [False, False, False, True]


def test_each_job_is_claimed_by_exactly_one_of_several_threads(store: JobStore) -> None:
    ids = {submit(store).id for _ in range(30)}
    claimed: list[str] = []
    barrier = threading.Barrier(6)

    def work(worker: str) -> None:
        barrier.wait()
        while (job := store.claim(worker, 60)) is not None:
            claimed.append(job.id)
            assert store.complete(job.id, worker, "/r", "application/json", {})

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Counter(claimed) == Counter(ids)  # every job once, none twice
    assert store.counts_by_state() == {"queued": 0, "running": 0, "done": 30, "failed": 0}


_CLAIMING_PROCESS = """
import sys
from jobs.db import make_engine
from jobs.store import JobStore
store = JobStore(make_engine(sys.argv[1]))
sys.stdin.readline()  # start together
while (job := store.claim(sys.argv[2], 60)) is not None:
    assert store.complete(job.id, sys.argv[2], "/r", "application/json", {})
    print(job.id, flush=True)
"""


def test_each_job_is_claimed_by_exactly_one_of_several_processes_on_postgresql(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    store = JobStore(engine)
    ids = {submit(store).id for _ in range(40)}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _CLAIMING_PROCESS, postgres_url, f"p{i}"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=PROJECT_ROOT,
        )
        for i in range(4)
    ]
    for worker in workers:
        worker.stdin.write("go\n")
        worker.stdin.flush()
    outputs = [worker.communicate(timeout=120)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0, 0, 0]
    claimed = [line for output in outputs for line in output.split()]
    assert Counter(claimed) == Counter(ids)
    engine.dispose()


def test_list_filters_by_state_model_source_and_uids(store: JobStore, clock: Clock) -> None:
    a = submit(store, "chest", source="rest", study_uid="1.1", series_uid="1.1.1")
    clock.advance(1)
    b = submit(store, "chest", source="dimse", study_uid="1.1", series_uid="1.1.2")
    clock.advance(1)
    c = submit(store, "brain", source="stow", study_uid="2.2", series_uid="2.2.1")
    store.claim("w", 30)  # a, the oldest
    assert [j.id for j in store.list()] == [c.id, b.id, a.id]  # newest first
    assert [j.id for j in store.list(model="chest")] == [b.id, a.id]
    assert [j.id for j in store.list(state="running")] == [a.id]
    assert [j.id for j in store.list(source="dimse")] == [b.id]
    assert [j.id for j in store.list(study_uid="1.1", state="queued")] == [b.id]
    assert [j.id for j in store.list(series_uid="2.2.1")] == [c.id]
    assert [j.id for j in store.list(limit=1)] == [c.id]
    assert store.list(model="none") == []


def test_counts_and_the_age_of_the_oldest_queued_job(store: JobStore, clock: Clock) -> None:
    assert store.oldest_queued_age_s() is None
    assert store.counts_by_state() == {"queued": 0, "running": 0, "done": 0, "failed": 0}
    submit(store)
    clock.advance(5)
    submit(store)
    clock.advance(2.5)
    assert store.oldest_queued_age_s() == pytest.approx(7.5)
    store.claim("w", 30)
    assert store.oldest_queued_age_s() == pytest.approx(2.5)
    assert store.counts_by_state() == {"queued": 1, "running": 1, "done": 0, "failed": 0}


def test_retention_finds_jobs_finished_before_a_cutoff_and_deletes_them(store: JobStore, clock: Clock) -> None:
    old, recent, queued = [submit(store) for _ in range(3) if not clock.advance(1)]
    assert store.claim("w", 30).id == old.id
    assert store.complete(old.id, "w", "/r", "application/json", {})
    clock.advance(3600)
    assert store.claim("w", 30).id == recent.id
    store.fail(recent.id, "w", "inference_failed", "x", {}, retryable=False)
    clock.advance(60)
    assert [j.id for j in store.finished_before(clock.now - timedelta(seconds=1800))] == [old.id]
    assert [j.id for j in store.finished_before(clock.now)] == [old.id, recent.id]
    assert store.delete(old.id) and not store.delete(old.id)
    assert store.get(old.id) is None and store.get(queued.id).state == "queued"
