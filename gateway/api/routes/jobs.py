"""The async REST API: submit a job (``POST /v1/models/{name}/jobs``, the bodies of predict),
follow it (``GET /v1/jobs/{id}``, ``GET /v1/jobs``) and fetch its answer
(``GET /v1/jobs/{id}/result``) — the bytes predict would have answered, in the format asked
for at submission — and the deliveries of jobs' outputs to the destinations of their route
(``GET /v1/deliveries``, ``state=failed_export`` the dead letters, ``POST .../retry``).

The upload is received and bounded exactly as predict's (:func:`gateway.uploads.receive`)
and written durably under ``<work_dir>/jobs/<id>/input/`` before the 202. An
``Idempotency-Key`` names one job: the same key again answers that job, without storing the
new upload.
"""

from __future__ import annotations

import shutil
import uuid
from datetime import datetime
from typing import Literal

import anyio
from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from jobs import Job, JobStore
from jobs.delivery import Delivery, DeliveryStore
from jobs.received import ReceivedStore
from preprocessing import PreprocessingError, open_instance
from preprocessing.attributes import header_text

from ...errors import DeliveryNotFound, DeliveryNotRetryable, JobFailed, JobNotFinished, JobNotFound, NotAcceptable
from ...job_runner import job_folder, wake_job_workers, write_input
from ...outputs.negotiation import requested_format
from ...outputs.openapi import FORMAT_NAMES
from ...outputs.registry import ENCODERS
from ...schemas import ErrorBody
from ...uploads import UploadLimits, receive
from ..deps import CatalogDep, SettingsDep
from .predict import _REQUEST_BODY

router = APIRouter(tags=["jobs"])

JobStateName = Literal["queued", "running", "done", "failed"]


class JobErrorPublic(BaseModel):
    code: str = Field(description="The stable error code the job failed with (the README's error table).")
    message: str


class DeliveryPublic(BaseModel):
    """Where a job's DICOM outputs go, and how far they got."""

    id: str
    job_id: str
    destination: str = Field(description="The destination's name in the routes file.")
    outputs: list[str] = Field(description="The outputs sent (seg, sr, sc), together in one attempt.")
    state: Literal["waiting", "pending", "sending", "delivered", "failed_export", "cancelled"] = Field(
        description="waiting: the job runs; pending: due at next_attempt_at; delivered; failed_export: dead-lettered "
        "(retry with POST /v1/deliveries/{id}/retry); cancelled: the job failed."
    )
    attempts: int
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    error: JobErrorPublic | None = Field(description="Why the latest attempt failed (the README's delivery error codes).")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, delivery: Delivery) -> DeliveryPublic:
        return cls(
            id=delivery.id, job_id=delivery.job_id, destination=delivery.destination, outputs=delivery.outputs, state=delivery.state,
            attempts=delivery.attempts, next_attempt_at=delivery.next_attempt_at if delivery.state == "pending" else None,
            delivered_at=delivery.delivered_at,
            error=JobErrorPublic(code=delivery.error_code, message=delivery.error_message or "") if delivery.error_code else None,
            created_at=delivery.created_at, updated_at=delivery.updated_at,
        )


def export_state(deliveries: list[Delivery]) -> str | None:
    """The job's deliveries in one word: failed_export when one is dead-lettered, pending while
    one is under way, delivered when all are, cancelled when the job failed; None without any."""
    states = {delivery.state for delivery in deliveries}
    for summary, members in (("failed_export", {"failed_export"}), ("pending", {"waiting", "pending", "sending"}), ("cancelled", {"cancelled"})):
        if states & members:
            return summary
    return "delivered" if states else None


class JobPublic(BaseModel):
    """A job as the API shows it."""

    id: str
    model: str
    source: Literal["rest", "stow", "dimse"]
    state: JobStateName
    format: str = Field(description="The output format of the result, chosen at submission (format= or Accept).")
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = Field(description="Start of the latest attempt.")
    finished_at: datetime | None
    attempts: int
    max_attempts: int
    timings_ms: dict[str, float] = Field(description="Stage times of the latest attempt in ms: wait (queued to started), receive..postprocess as predict, total.")
    error: JobErrorPublic | None = Field(description="Why the job failed (state failed), or why its latest attempt failed (queued again).")
    study_uid: str | None
    series_uid: str | None
    result_url: str | None = Field(description="Where the answer is, once done.")
    export_state: Literal["pending", "delivered", "failed_export", "cancelled"] | None = Field(
        description="Its deliveries in one word (failed_export when one is dead-lettered); null when its route sends nothing."
    )
    deliveries: list[DeliveryPublic] = Field(description="Where its DICOM outputs go (the send entries of its route).")
    calling_ae: str | None = Field(
        None,
        description="The DICOM calling AE title that sent a dimse job's series (a study job's series: several joined by ', '); "
        "null for rest and stow jobs, or once the received series' record is gone.",
    )

    @classmethod
    def of(cls, job: Job, deliveries: list[Delivery] = (), calling_ae: str | None = None) -> JobPublic:
        deliveries = list(deliveries)
        return cls(
            calling_ae=calling_ae if job.source == "dimse" else None,
            export_state=export_state(deliveries), deliveries=[DeliveryPublic.of(d) for d in deliveries],
            id=job.id, model=job.model, source=job.source, state=job.state, format=job.output_format,
            created_at=job.created_at, updated_at=job.updated_at, started_at=job.started_at, finished_at=job.finished_at,
            attempts=job.attempts, max_attempts=job.max_attempts, timings_ms=job.timings_ms,
            error=JobErrorPublic(code=job.error_code, message=job.error_message or "") if job.error_code else None,
            study_uid=job.study_uid, series_uid=job.series_uid,
            result_url=f"/v1/jobs/{job.id}/result" if job.state == "done" else None,
        )


class JobListPublic(BaseModel):
    jobs: list[JobPublic]


def _store(request: Request) -> JobStore:
    return request.app.state.job_store


def _errors(*codes: int) -> dict:
    return {code: {"model": ErrorBody} for code in codes}


@router.post(
    "/v1/models/{name}/jobs",
    status_code=202,
    response_model=JobPublic,
    summary="Submit a model run on DICOM as a job",
    description=(
        "Accepts the bodies of predict, stores them durably and answers 202 with the job and "
        "`Location: /v1/jobs/{id}`. The output format (format= or Accept, as predict) is fixed "
        "now. The same `Idempotency-Key` answers the job it first created."
    ),
    openapi_extra={"requestBody": _REQUEST_BODY},
    responses=_errors(400, 401, 403, 404, 406, 413, 415, 422),
)
async def submit_job(
    name: str,
    request: Request,
    catalog: CatalogDep,
    settings: SettingsDep,
    output: str | None = Query(None, alias="format", description="Output format of the result", json_schema_extra={"enum": FORMAT_NAMES}),
    webhook_url: str | None = Query(
        None, max_length=2048, pattern=r"^https?://\S+$", description="Called (POST JSON {id, state, model, result_url}) when the job is done or failed."
    ),
    idempotency_key: str | None = Header(None, min_length=1, max_length=256, pattern=r"^[\x21-\x7e]+$"),
) -> JSONResponse:
    card = await catalog.card(name)
    request.state.model_name = card.name
    output_format = requested_format(request)
    store = _store(request)
    if idempotency_key is not None:
        existing = await anyio.to_thread.run_sync(store.by_idempotency_key, idempotency_key)
        if existing is not None:
            return _accepted(existing)
    parts = await receive(request, UploadLimits.from_settings(settings))
    job_id = uuid.uuid4().hex
    folder = job_folder(settings.work_dir, job_id) / "input"
    try:
        await anyio.to_thread.run_sync(write_input, folder, parts)
    except BaseException:  # a full disk: no half-written input left behind
        await anyio.to_thread.run_sync(lambda: shutil.rmtree(folder.parent, ignore_errors=True))
        raise
    study_uid, series_uid = _uids(parts[0].data)
    job, created = await anyio.to_thread.run_sync(
        lambda: store.submit(
            card.name, "rest", str(folder), job_id=job_id, idempotency_key=idempotency_key, study_uid=study_uid, series_uid=series_uid,
            webhook_url=webhook_url, output_format=output_format.value, max_attempts=settings.job_max_attempts,
        )
    )
    if created:
        wake_job_workers(request.app)
    else:  # the same key, submitted meanwhile by another request
        await anyio.to_thread.run_sync(lambda: shutil.rmtree(folder.parent, ignore_errors=True))
    return _accepted(job)


def _accepted(job: Job) -> JSONResponse:
    return JSONResponse(JobPublic.of(job).model_dump(mode="json"), status_code=202, headers={"Location": f"/v1/jobs/{job.id}"})


def _uids(data: bytes) -> tuple[str | None, str | None]:
    """Study and Series Instance UID of the first part, for the filters of ``GET /v1/jobs``;
    None when it cannot be read (the job will fail with the reason)."""
    try:
        header = open_instance(data).header
    except PreprocessingError:
        return None, None
    return header_text(header, "StudyInstanceUID") or None, header_text(header, "SeriesInstanceUID") or None


async def _job(request: Request, job_id: str) -> Job:
    job = await anyio.to_thread.run_sync(_store(request).get, job_id)
    if job is None:
        raise JobNotFound("no job with this id (finished jobs are removed after the retention period)")
    return job


def _deliveries(request: Request) -> DeliveryStore:
    return DeliveryStore(_store(request).engine)


def _calling_aes(request: Request, jobs: list[Job]) -> dict[str, str]:
    """The calling AE title of each dimse job's received series (a study job: its study's), by job id."""
    dimse = [job for job in jobs if job.source == "dimse"]
    if not dimse:
        return {}
    by_series, by_study = ReceivedStore(_store(request).engine).calling_aes(
        [job.series_uid for job in dimse if job.series_uid], [job.study_uid for job in dimse if job.study_uid and not job.series_uid]
    )
    found = {job.id: by_series.get(job.series_uid) if job.series_uid else by_study.get(job.study_uid or "") for job in dimse}
    return {job_id: ae for job_id, ae in found.items() if ae is not None}


async def _public(request: Request, jobs: list[Job]) -> list[JobPublic]:
    """The jobs as the API shows them, each with its deliveries and a dimse job with its sender
    (one query for all deliveries, at most two for the senders)."""
    deliveries = await anyio.to_thread.run_sync(_deliveries(request).for_jobs, [job.id for job in jobs])
    senders = await anyio.to_thread.run_sync(_calling_aes, request, jobs)
    return [JobPublic.of(job, deliveries[job.id], senders.get(job.id)) for job in jobs]


@router.get("/v1/jobs/{job_id}", response_model=JobPublic, summary="A job's state, stage times, error and deliveries", responses=_errors(401, 403, 404, 422))
async def get_job(job_id: str, request: Request) -> JobPublic:
    return (await _public(request, [await _job(request, job_id)]))[0]


@router.get(
    "/v1/jobs/{job_id}/result",
    summary="A finished job's answer",
    description=(
        "The answer predict would have sent, in the format chosen at submission; 409 job_not_finished "
        "while it is queued or running, the job's own error code when it failed, 406 when format= or "
        "Accept asks for another format than the job's."
    ),
    responses={200: {"content": {encoder.media_type: {} for encoder in ENCODERS.values()}}, **_errors(401, 403, 404, 406, 409, 422, 500, 502, 503, 504)},
)
async def get_job_result(
    job_id: str,
    request: Request,
    output: str | None = Query(None, alias="format", description="Must be the job's format when given", json_schema_extra={"enum": FORMAT_NAMES}),
) -> Response:
    job = await _job(request, job_id)
    _check_format(request, job)
    if job.state == "failed":
        raise JobFailed(job.error_code or "internal_error", job.error_message or "the job failed")
    if job.state != "done" or job.result_path is None:
        raise JobNotFinished(f"the job is {job.state}; poll /v1/jobs/{job.id} until it is done")
    try:
        body = await anyio.to_thread.run_sync(_read, job.result_path)
    except FileNotFoundError:
        raise JobNotFound("the job's result was removed after the retention period") from None
    return Response(content=body, media_type=job.result_media_type)


def _check_format(request: Request, job: Job) -> None:
    """406 when ``format=`` names another format than the job's, or when an ``Accept``
    header (without ``format=``) accepts neither the result's media type nor a wildcard of it."""
    refused = NotAcceptable(f"this job's result is in format {job.output_format}; submit a job with the format wanted")
    if request.query_params.get("format"):
        if requested_format(request).value != job.output_format:
            raise refused
        return
    accept = request.headers.get("accept", "").strip()
    if accept and job.result_media_type:
        media = job.result_media_type.lower()
        accepted = {item.split(";")[0].strip().lower() for item in accept.split(",")}
        if not accepted & {media, "*/*", media.split("/")[0] + "/*"}:
            raise refused


def _read(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


@router.get("/v1/jobs", response_model=JobListPublic, summary="Jobs, newest first, filtered", responses=_errors(401, 403, 422))
async def list_jobs(
    request: Request,
    state: JobStateName | None = None,
    model: str | None = None,
    source: Literal["rest", "stow", "dimse"] | None = None,
    study_uid: str | None = Query(None, max_length=64),
    series_uid: str | None = Query(None, max_length=64),
    limit: int = Query(100, ge=1, le=1000),
) -> JobListPublic:
    jobs = await anyio.to_thread.run_sync(lambda: _store(request).list(state, model, source, study_uid, series_uid, limit))
    return JobListPublic(jobs=await _public(request, jobs))


class DeliveryListPublic(BaseModel):
    deliveries: list[DeliveryPublic]


DeliveryStateName = Literal["waiting", "pending", "sending", "delivered", "failed_export", "cancelled"]


@router.get(
    "/v1/deliveries", response_model=DeliveryListPublic, summary="Deliveries, newest first, filtered (state=failed_export: the dead letters)",
    responses=_errors(401, 403, 422),
)
async def list_deliveries(
    request: Request,
    state: DeliveryStateName | None = None,
    destination: str | None = Query(None, max_length=64),
    job_id: str | None = Query(None, max_length=64),
    limit: int = Query(100, ge=1, le=1000),
) -> DeliveryListPublic:
    found = await anyio.to_thread.run_sync(lambda: _deliveries(request).list(state, destination, job_id, limit))
    return DeliveryListPublic(deliveries=[DeliveryPublic.of(delivery) for delivery in found])


@router.get("/v1/deliveries/{delivery_id}", response_model=DeliveryPublic, summary="One delivery", responses=_errors(401, 403, 404, 422))
async def get_delivery(delivery_id: str, request: Request) -> DeliveryPublic:
    delivery = await anyio.to_thread.run_sync(_deliveries(request).get, delivery_id)
    if delivery is None:
        raise DeliveryNotFound("no delivery with this id (deliveries are removed with their job after the retention period)")
    return DeliveryPublic.of(delivery)


@router.post(
    "/v1/deliveries/{delivery_id}/retry",
    response_model=DeliveryPublic,
    summary="Send a dead-lettered delivery again",
    description="A failed_export delivery becomes pending now with its attempts counted afresh; 409 delivery_not_retryable in any other state.",
    responses=_errors(401, 403, 404, 409, 422),
)
async def retry_delivery(delivery_id: str, request: Request) -> DeliveryPublic:
    store = _deliveries(request)
    retried = await anyio.to_thread.run_sync(store.retry, delivery_id)
    if retried is None:
        current = await anyio.to_thread.run_sync(store.get, delivery_id)
        if current is None:
            raise DeliveryNotFound("no delivery with this id (deliveries are removed with their job after the retention period)")
        raise DeliveryNotRetryable(f"the delivery is {current.state}; only a failed_export delivery whose outputs were made is retried")
    return DeliveryPublic.of(retried)
