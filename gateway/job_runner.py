"""A job's input on disk, and the run of a job by the code path of ``POST .../predict``.

A job's input is the DICOM parts its request sent, written in order under
``<work_dir>/jobs/<id>/input/`` (``0000.dcm``...; ``parts.json`` keeps each part's form field,
which can select a model input) and fsync'd, files and folders, before the job is accepted.
:class:`ModelJobRunner` is the ``run`` of the gateway's :class:`jobs.JobWorker`: it reads the
parts back and calls :func:`gateway.dispatch.run_model_outputs` on the application's event loop
(its Triton channel, catalog and decoder pool belong to that loop) with the job's output format,
then stores the encoded answer — the bytes predict would have sent — as ``result``, and the
DICOM outputs its deliveries send (SEG, SR, SC) as ``outputs/<format>.dcm``.

Metrics (:mod:`gateway.metrics`): each job's stages in ``medserve_job_stage_seconds`` — wait and,
for a DIMSE series, assembly on its first attempt (:class:`JobAttemptMetrics`), inference and
export on success — and each attempt's outcome; the store's gauges are read at scrape time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
import json
import os
import socket
import time
from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI, Response
from pydantic import BaseModel

from jobs import Job, JobError, JobOutcome, JobStore, JobWorker, database_url, make_engine
from jobs.engine import OUTPUTS_FOLDER
from jobs.polling import PollingWorker
from jobs.received import ReceivedStore
from preprocessing import PreprocessingError

from .audit import AuditRecord
from .dispatch import run_model_outputs
from .errors import PREPROCESSING_STATUS, GatewayError
from .metrics import JOB_OUTCOMES, JOB_STAGE_LATENCY, JOB_STORE_METRICS
from .outputs.registry import OutputFormat
from .stages import StageClock
from .uploads import DicomPart

#: The part list of an input folder: ``[{"file", "field", "filename"}]`` in upload order.
MANIFEST = "parts.json"
RESULT_FILE = "result"
#: Seconds an idle job worker waits before looking for queued jobs again.
JOB_POLL_S = 0.5


def job_folder(work_dir: str | Path, job_id: str) -> Path:
    return Path(work_dir) / "jobs" / job_id


def write_input(folder: Path, parts: list[DicomPart]) -> None:
    """Write ``parts`` into ``folder`` (created), durably: each file and the manifest are
    fsync'd, then the folder and its parent, so that an accepted job's input survives a crash."""
    folder.mkdir(parents=True, exist_ok=False)
    manifest = []
    for index, part in enumerate(parts):
        name = f"{index:04d}.dcm"
        _write_durably(folder / name, part.data)
        manifest.append({"file": name, "field": part.field, "filename": part.filename})
    _write_durably(folder / MANIFEST, json.dumps(manifest).encode())
    for directory in (folder, folder.parent, folder.parent.parent):
        _fsync_folder(directory)


def read_input(folder: Path) -> list[DicomPart]:
    """The parts :func:`write_input` wrote, in their order; a folder without a manifest (a
    series or a whole study from the DIMSE spool: ``<study>/<series>/<sop>.dcm``) is every
    ``*.dcm`` file under it, by relative path (series folder, then name)."""
    if not (folder / MANIFEST).exists():
        return [DicomPart(path.read_bytes()) for path in sorted(folder.rglob("*.dcm")) if path.is_file()]
    manifest = json.loads((folder / MANIFEST).read_bytes())
    return [DicomPart((folder / entry["file"]).read_bytes(), entry["field"], entry["filename"]) for entry in manifest]


def _write_durably(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def encoded_answer(answer: BaseModel | Response) -> tuple[bytes, str]:
    """The bytes and media type predict sends for ``answer`` (a JSON model as FastAPI
    serializes a response model: by alias)."""
    if isinstance(answer, BaseModel):
        return answer.model_dump_json(by_alias=True).encode(), "application/json"
    return bytes(answer.body), answer.media_type or "application/octet-stream"


def _write_outputs(folder: Path, made: dict[str, Response | GatewayError]) -> tuple[dict[str, str], dict[str, str]]:
    """Write each output the job's deliveries send as ``<folder>/<format>.dcm`` (durably, before
    the job is done); ``(format → file, format → why it could not be made)``."""
    outputs, errors = {}, {}
    for name, answer in made.items():
        if isinstance(answer, GatewayError):
            errors[name] = f"{answer.code}: {answer.message}"
            continue
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.dcm"
        _write_durably(path, bytes(answer.body))
        outputs[name] = str(path)
    if outputs:
        _fsync_folder(folder)
    return outputs, errors


class ModelJobRunner:
    """``run(job)`` for :class:`jobs.JobWorker`, in a worker thread, against ``app``'s state."""

    def __init__(self, app: FastAPI, loop: asyncio.AbstractEventLoop) -> None:
        self.app, self.loop = app, loop

    def __call__(self, job: Job) -> JobOutcome:
        return asyncio.run_coroutine_threadsafe(self._run(job), self.loop).result()

    async def _run(self, job: Job) -> JobOutcome:
        state = self.app.state
        card = await state.catalog.card(job.model)
        folder = Path(job.input_dir)
        parts = await asyncio.to_thread(read_input, folder)
        clock = StageClock(card.name)
        audit = AuditRecord(request_id=job.id, key_id="job", route="/v1/models/{name}/jobs", model=card.name)
        started = time.perf_counter()
        wanted = await asyncio.to_thread(state.job_store.wanted_outputs, job.id)
        try:
            answer, made = await run_model_outputs(
                parts, card, state.triton, clock, audit, job.id, state.settings, OutputFormat(job.output_format), wanted, None,
                state.catalog.monitor(card),
            )
        except PreprocessingError as exc:  # as the gateway answers it: by code, with its status
            self._audit(audit, exc.code, PREPROCESSING_STATUS.get(exc.code, 400), clock)
            raise JobError(exc.code, PREPROCESSING_STATUS.get(exc.code, 400), exc.message) from None
        except Exception as exc:
            self._audit(audit, getattr(exc, "code", "internal_error"), getattr(exc, "status_code", 500), clock)
            raise
        JOB_STAGE_LATENCY.labels(job.model, "inference").observe(time.perf_counter() - started)
        self._audit(audit, "ok", 200, clock)
        started = time.perf_counter()
        body, media_type = encoded_answer(answer)
        result = job_folder(state.settings.work_dir, job.id) / RESULT_FILE
        result.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(_write_durably, result, body)
        outputs, output_errors = await asyncio.to_thread(_write_outputs, result.parent / OUTPUTS_FOLDER, made)
        JOB_STAGE_LATENCY.labels(job.model, "export").observe(time.perf_counter() - started)
        timings = clock.finish()
        if job.started_at is not None:
            timings["wait"] = round((job.started_at - job.created_at).total_seconds() * 1000, 3)
        return JobOutcome(str(result), media_type, timings, outputs, output_errors)

    def _audit(self, record: AuditRecord, outcome: str, status_code: int, clock: StageClock) -> None:
        """The job's run in the audit trail, as a predict request is (request id: the job id)."""
        if self.app.state.audit is not None:
            record.outcome, record.status_code = outcome, status_code
            record.latency_ms = clock.finish()["total"]
            self.app.state.audit.write(record)


class JobAttemptMetrics:
    """``on_attempt`` of the gateway's workers: the outcome of every attempt; on a job's first
    attempt its wait (submitted → claimed) and, for a series the DIMSE receiver assembled, its
    assembly (first instance received → series complete, from the received series' record)."""

    def __init__(self, received: ReceivedStore) -> None:
        self.received = received

    def __call__(self, job: Job, after: Job | None) -> None:
        for state in ("done", "failed", "queued"):  # each outcome's series from 0, so increase() sees its first count
            JOB_OUTCOMES.labels(job.model, state)
        if after is not None:
            JOB_OUTCOMES.labels(job.model, after.state).inc()
        if job.attempts != 1:
            return
        if job.started_at is not None:
            JOB_STAGE_LATENCY.labels(job.model, "wait").observe(max((job.started_at - job.created_at).total_seconds(), 0.0))
        if job.source == "dimse" and job.series_uid:
            series = self.received.series(job.series_uid)
            if series is not None and series.completed_at is not None:
                assembly = (series.completed_at - series.first_received_at).total_seconds()
                JOB_STAGE_LATENCY.labels(job.model, "assembly").observe(max(assembly, 0.0))


def open_job_store(settings) -> JobStore:  # noqa: ANN001 - gateway.config.Settings
    """The job store of ``settings`` (SQLite under ``work_dir`` unless ``database_url``)."""
    Path(settings.work_dir).mkdir(parents=True, exist_ok=True)
    return JobStore(make_engine(database_url(Path(settings.work_dir), settings.database_url)))


def wake_job_workers(app: FastAPI) -> None:
    """This process made a job: its idle workers look for it now instead of at their next poll."""
    for worker in getattr(app.state, "job_workers", ()):
        worker.wake()


def start_job_workers(
    app: FastAPI, store: JobStore, loop: asyncio.AbstractEventLoop, senders: Sequence[PollingWorker] = ()
) -> list[JobWorker]:
    """``MEDSERVE_JOB_WORKERS`` worker threads running jobs with :class:`ModelJobRunner`,
    each cleaning up finished jobs past ``MEDSERVE_JOB_RETENTION_H``; a job done wakes
    ``senders`` (its deliveries are due now)."""
    settings = app.state.settings
    metrics = JobAttemptMetrics(ReceivedStore(store.engine))

    def observe(job: Job, after: Job | None) -> None:
        metrics(job, after)
        if after is not None and after.state == "done":
            for sender in senders:
                sender.wake()

    workers = [
        JobWorker(
            store,
            ModelJobRunner(app, loop),
            f"{socket.gethostname()}-{os.getpid()}-{index}",
            lease_s=settings.job_lease_s,
            poll_s=JOB_POLL_S,
            max_poll_s=settings.worker_idle_poll_max_s,
            webhook_timeout_s=settings.job_webhook_timeout_s,
            retention=timedelta(hours=settings.job_retention_h),
            on_attempt=observe,
        )
        for index in range(settings.job_workers)
    ]
    JOB_STORE_METRICS.watch(store, workers)
    for worker in workers:
        worker.start()
    return workers
