"""The job engine: a worker takes a job to done or failed by what its run returns or raises,
keeps the lease alive while it runs, calls the job's webhook (a real HTTP server here), and
retention removes finished jobs with their files."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Iterator

import pytest

from devtools.processes import free_port
from jobs.db import database_url, make_engine
from jobs.engine import JobError, JobOutcome, JobWorker, cleanup, error_of
from jobs.store import Job, JobStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[JobStore]:
    engine = make_engine(database_url(tmp_path))
    yield JobStore(engine)
    engine.dispose()


def writes_answer(tmp_path: Path):
    def run(job: Job) -> JobOutcome:
        result = tmp_path / job.id / "result"
        result.parent.mkdir(parents=True, exist_ok=True)
        result.write_bytes(b'{"ok": true}')
        return JobOutcome(str(result), "application/json", {"inference": 3.0})

    return run


def raises(exc: BaseException):
    def run(job: Job) -> JobOutcome:
        raise exc

    return run


class GatewayLikeError(Exception):
    """Shaped like the gateway's errors: ``code``, ``status_code``, ``message``."""

    def __init__(self, code: str, status_code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.status_code, self.message = code, status_code, message


def test_a_run_that_returns_completes_the_job(store: JobStore, tmp_path: Path) -> None:
    job, _ = store.submit("m", "rest", str(tmp_path / "in"))
    done = JobWorker(store, writes_answer(tmp_path), "w").run_once()
    assert (done.id, done.state, done.result_media_type, done.timings_ms) == (job.id, "done", "application/json", {"inference": 3.0})
    assert Path(done.result_path).read_bytes() == b'{"ok": true}'
    assert JobWorker(store, writes_answer(tmp_path), "w").run_once() is None


def test_a_client_error_fails_the_job_at_once_with_its_code(store: JobStore) -> None:
    store.submit("m", "rest", "/in", max_attempts=3)
    failed = JobWorker(store, raises(GatewayLikeError("input_mismatch", 422, "no series matches the input")), "w").run_once()
    assert (failed.state, failed.attempts, failed.error_code, failed.error_message) == ("failed", 1, "input_mismatch", "no series matches the input")


def test_a_server_error_is_retried_until_attempts_are_spent(store: JobStore) -> None:
    store.submit("m", "rest", "/in", max_attempts=2)
    worker = JobWorker(store, raises(JobError("triton_unavailable", 503, "Triton is not reachable")), "w")
    assert worker.run_once().state == "queued"
    final = worker.run_once()
    assert (final.state, final.attempts, final.error_code) == ("failed", 2, "triton_unavailable")


def test_an_unexpected_exception_is_retried_and_its_message_never_stored(store: JobStore) -> None:
    store.submit("m", "rest", "/in", max_attempts=1)
    failed = JobWorker(store, raises(ValueError("PatientName=DOE^JOHN")), "w").run_once()
    assert (failed.state, failed.error_code) == ("failed", "internal_error")
    assert "DOE" not in failed.error_message and "ValueError" in failed.error_message


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (GatewayLikeError("payload_too_large", 413, "too big"), ("payload_too_large", "too big", False)),
        (GatewayLikeError("overloaded", 429, "busy"), ("overloaded", "busy", True)),
        (GatewayLikeError("inference_failed", 502, "failed"), ("inference_failed", "failed", True)),
        (RuntimeError("secret"), ("internal_error", "internal error (RuntimeError)", True)),
    ],
)
def test_errors_are_classified_by_their_status(exc: BaseException, expected: tuple) -> None:
    assert error_of(exc) == expected


def test_the_lease_is_renewed_while_a_long_job_runs(store: JobStore, tmp_path: Path) -> None:
    job, _ = store.submit("m", "rest", "/in")
    renewed = threading.Event()

    def run(claimed: Job) -> JobOutcome:
        first_expiry = claimed.lease_expires_at
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # until the heartbeat has moved the lease on
            if store.get(claimed.id).lease_expires_at > first_expiry:
                renewed.set()
                break
            time.sleep(0.02)
        return writes_answer(tmp_path)(claimed)

    done = JobWorker(store, run, "w", lease_s=0.3).run_once()
    assert renewed.is_set() and done.state == "done"


class Hook(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        Hook.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[str]:
    Hook.received = []
    server = HTTPServer(("127.0.0.1", free_port()), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook"
    server.shutdown()
    server.server_close()


def test_the_webhook_is_called_when_a_job_is_done(store: JobStore, tmp_path: Path, webhook: str) -> None:
    job, _ = store.submit("chest", "rest", "/in", webhook_url=webhook)
    JobWorker(store, writes_answer(tmp_path), "w", result_url=lambda j: f"http://medserve/v1/jobs/{j.id}/result").run_once()
    assert Hook.received == [{"id": job.id, "state": "done", "model": "chest", "result_url": f"http://medserve/v1/jobs/{job.id}/result"}]


def test_the_webhook_is_called_with_the_code_when_a_job_fails(store: JobStore, webhook: str) -> None:
    job, _ = store.submit("chest", "rest", "/in", webhook_url=webhook)
    JobWorker(store, raises(GatewayLikeError("input_mismatch", 422, "x")), "w").run_once()
    assert Hook.received == [{"id": job.id, "state": "failed", "model": "chest", "result_url": None, "error_code": "input_mismatch"}]


def test_a_failing_webhook_is_counted_and_never_fails_the_job(store: JobStore, tmp_path: Path) -> None:
    store.submit("m", "rest", "/in", webhook_url=f"http://127.0.0.1:{free_port()}/nobody-listens")
    worker = JobWorker(store, writes_answer(tmp_path), "w", webhook_timeout_s=2)
    assert worker.run_once().state == "done"
    assert worker.webhook_failures == 1


def test_worker_threads_run_every_job_once(store: JobStore, tmp_path: Path) -> None:
    ids = {store.submit("m", "rest", "/in")[0].id for _ in range(12)}
    runs: list[str] = []

    def run(job: Job) -> JobOutcome:
        runs.append(job.id)
        return writes_answer(tmp_path)(job)

    workers = [JobWorker(store, run, f"w{i}", lease_s=30, poll_s=0.05) for i in range(3)]
    for worker in workers:
        worker.start()
    deadline = time.monotonic() + 60
    while store.counts_by_state()["done"] < 12 and time.monotonic() < deadline:
        time.sleep(0.05)
    for worker in workers:
        worker.stop(timeout_s=30)
    assert sorted(runs) == sorted(ids)
    assert store.counts_by_state() == {"queued": 0, "running": 0, "done": 12, "failed": 0}


def test_cleanup_removes_jobs_past_retention_with_their_files(store: JobStore, tmp_path: Path) -> None:
    def job_with_input(folder: Path) -> Job:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "1.dcm").write_bytes(b"DICM")
        return store.submit("m", "rest", str(folder))[0]

    own = job_with_input(tmp_path / "a" / "input")
    shared_1, shared_2 = job_with_input(tmp_path / "series"), job_with_input(tmp_path / "series")
    pending = job_with_input(tmp_path / "b" / "input")
    worker = JobWorker(store, writes_answer(tmp_path), "w")
    for _ in range(2):
        worker.run_once()  # own, shared_1
    own_result = Path(store.get(own.id).result_path)

    assert cleanup(store, timedelta(hours=1)) == 0  # finished just now
    assert cleanup(store, timedelta(hours=1), now=store.clock() + timedelta(hours=2)) == 2
    assert store.get(own.id) is None and store.get(shared_1.id) is None
    assert not (tmp_path / "a" / "input").exists() and not own_result.exists() and not own_result.parent.exists()
    assert (tmp_path / "series" / "1.dcm").exists()  # still the input of shared_2
    assert store.get(shared_2.id).state == "queued" and store.get(pending.id).state == "queued"
