"""The job engine: :class:`JobWorker` claims jobs from a :class:`~jobs.store.JobStore`, runs
them, keeps their lease alive while they run, and records their outcome; :func:`cleanup`
removes finished jobs past their retention with their files.

What a job *does* is the ``run`` callable a worker is given (the gateway's runs the model the
way ``POST /v1/models/{name}/predict`` does and stores the encoded answer). It returns a
:class:`JobOutcome` or raises. An exception carrying an HTTP-like ``status_code`` and a
``code`` (the gateway's errors, :class:`JobError`) is recorded by that code: a 4xx is the
input's fault and fails the job at once, anything else (5xx, 429, an unexpected exception) is
retried while the job has attempts left. The message of an exception without a ``code`` is
never stored or logged (library messages may quote DICOM values): only its type.

A webhook named by the job is POSTed ``{"id", "state", "model", "result_url"}`` (and
``error_code`` on failure) when the job reaches done or failed, within a timeout; a webhook
that fails is logged and counted and never changes the job.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable

from .delivery.store import DeliveryStore
from .polling import PollingWorker
from .store import Job, JobStore

__all__ = ["JobError", "JobOutcome", "JobWorker", "cleanup", "error_of"]

log = logging.getLogger("medserve.jobs")

#: The folder beside a job's ``result`` holding the outputs its deliveries send (``<format>.dcm``).
OUTPUTS_FOLDER = "outputs"


@dataclass(frozen=True)
class JobOutcome:
    """What a successful run stored: the answer's file and media type, its stage times (ms),
    and the outputs its deliveries send: ``outputs`` format → file, ``output_errors`` format →
    why it could not be made (those deliveries are dead-lettered, the job is still done)."""

    result_path: str
    media_type: str
    timings_ms: dict[str, float] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    output_errors: dict[str, str] = field(default_factory=dict)


class JobError(Exception):
    """A failure a ``run`` callable reports with its code and HTTP-like status (4xx: the
    input's fault, not retried)."""

    def __init__(self, code: str, status_code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.status_code, self.message = code, status_code, message


def error_of(exc: BaseException) -> tuple[str, str, bool]:
    """``(code, message, retryable)`` of what a run raised (duck-typed ``code`` and
    ``status_code``; a 4xx other than 429 is not retryable)."""
    code, status = getattr(exc, "code", None), getattr(exc, "status_code", None)
    if not isinstance(code, str) or not code:
        return "internal_error", f"internal error ({type(exc).__name__})", True
    message = getattr(exc, "message", None) or str(exc) or code
    retryable = not (isinstance(status, int) and 400 <= status < 500 and status != 429)
    return code, str(message), retryable


class JobWorker(PollingWorker):
    """One worker thread: claim, run under a renewed lease, complete or fail, notify; and
    every ``cleanup_every_s`` seconds, when ``retention`` is set, :func:`cleanup`.
    ``on_attempt(job, after)``, when given, hears of each attempt: the job as claimed and as the
    attempt left it (the gateway counts outcomes with it); its failure is logged, never the job's.

    ``lease_s`` is how long a claim holds a job without a heartbeat; the heartbeat renews it
    every third of that, so a worker that dies frees its job within ``lease_s``. ``poll_s`` is
    how long an idle worker waits before looking for work again, doubled while it stays idle up
    to ``max_poll_s`` (:class:`jobs.polling.PollingWorker`).
    """

    def __init__(
        self,
        store: JobStore,
        run: Callable[[Job], JobOutcome],
        worker_id: str | None = None,
        lease_s: float = 60.0,
        poll_s: float = 1.0,
        *,
        max_poll_s: float | None = None,
        webhook_timeout_s: float = 5.0,
        result_url: Callable[[Job], str] = lambda job: f"/v1/jobs/{job.id}/result",
        retention: timedelta | None = None,
        cleanup_every_s: float = 300.0,
        on_attempt: Callable[[Job, Job | None], None] | None = None,
    ) -> None:
        if lease_s <= 0:
            raise ValueError("lease_s must be positive")
        super().__init__(worker_id or f"worker-{uuid.uuid4().hex[:12]}", poll_s, max_poll_s)
        self.store, self.run = store, run
        self.lease_s = lease_s
        self.webhook_timeout_s, self.result_url = webhook_timeout_s, result_url
        self.retention, self.cleanup_every_s = retention, cleanup_every_s
        self.on_attempt = on_attempt
        self.webhook_failures = 0
        self._last_cleanup = float("-inf")

    def between(self) -> None:
        """Every ``cleanup_every_s`` seconds, when ``retention`` is set, :func:`cleanup`."""
        if self.retention is not None and time.monotonic() - self._last_cleanup >= self.cleanup_every_s:
            self._last_cleanup = time.monotonic()
            cleanup(self.store, self.retention)

    # -- one job --------------------------------------------------------------------------

    def run_once(self) -> Job | None:
        """Claim one job and take it to its next state; that job as it then is, or None when
        there was nothing to claim."""
        job = self.store.claim(self.worker_id, self.lease_s)
        if job is None:
            return None
        stop_heartbeat = threading.Event()
        heartbeat = threading.Thread(target=self._heartbeat, args=(job.id, stop_heartbeat), daemon=True)
        heartbeat.start()
        try:
            outcome = self.run(job)
        except Exception as exc:
            code, message, retryable = error_of(exc)
            timings = getattr(exc, "timings_ms", None) or {}
            after = self.store.fail(job.id, self.worker_id, code, message, timings, retryable)
            log.warning(
                "job attempt failed",
                extra={"job_id": job.id, "model": job.model, "code": code, "attempt": job.attempts, "state": after.state},
            )
        else:
            done = self.store.complete(
                job.id, self.worker_id, outcome.result_path, outcome.media_type, outcome.timings_ms, outcome.outputs, outcome.output_errors
            )
            if not done:
                log.warning("job lease lost before completion", extra={"job_id": job.id, "model": job.model})
            after = self.store.get(job.id)
        finally:
            stop_heartbeat.set()
            heartbeat.join()
        if self.on_attempt is not None:
            try:
                self.on_attempt(job, after)
            except Exception as exc:
                log.error("job attempt observer failed", extra={"job_id": job.id, "error_type": type(exc).__name__})
        if after is not None and after.state in ("done", "failed") and after.lease_owner is None:
            self._notify(after)
        return after

    def _heartbeat(self, job_id: str, stop: threading.Event) -> None:
        while not stop.wait(self.lease_s / 3):
            try:
                if not self.store.renew(job_id, self.worker_id, self.lease_s):
                    log.warning("job lease lost", extra={"job_id": job_id, "worker": self.worker_id})
                    return
            except Exception as exc:  # a missed renewal: the next one may succeed
                log.error("job lease renewal failed", extra={"job_id": job_id, "error_type": type(exc).__name__})

    def _notify(self, job: Job) -> None:
        if not job.webhook_url:
            return
        body = {"id": job.id, "state": job.state, "model": job.model, "result_url": self.result_url(job) if job.state == "done" else None}
        if job.state == "failed":
            body["error_code"] = job.error_code
        request = urllib.request.Request(
            job.webhook_url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.webhook_timeout_s) as response:  # noqa: S310 - http(s) checked at submit
                response.read(0)
        except Exception as exc:
            self.webhook_failures += 1
            log.warning("job webhook failed", extra={"job_id": job.id, "error_type": type(exc).__name__})


def cleanup(store: JobStore, retention: timedelta, now: datetime | None = None) -> int:
    """Delete the jobs that finished more than ``retention`` before ``now``, with their result
    file, the outputs their deliveries sent and their input folder (kept while another job
    still reads it, as the several models routed from one received series do); a job with a
    delivery still under way is kept until it is delivered or dead-lettered. The number of jobs
    deleted."""
    deleted = 0
    deliveries = DeliveryStore(store.engine)
    for job in store.finished_before((now or store.clock()) - retention):
        if deliveries.has_open(job.id) or not store.delete(job.id):
            continue  # another worker's cleanup was first
        deleted += 1
        if not store.input_in_use(job.input_dir):
            shutil.rmtree(job.input_dir, ignore_errors=True)
        if job.result_path:
            result = Path(job.result_path)
            result.unlink(missing_ok=True)
            shutil.rmtree(result.parent / OUTPUTS_FOLDER, ignore_errors=True)
            _remove_if_empty(result.parent)  # the job's own folder, once input and result are gone
    return deleted


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass
