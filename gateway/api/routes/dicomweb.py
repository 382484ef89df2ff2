"""DICOMweb STOW-RS: ``POST /dicomweb/studies`` stores instances and makes one job per routed
model — the job engine of the async REST API and of the DICOM node runs them.

Routing rule: a single-input model takes the instances whose (0008,0060) *Modality* its
preprocessing spec accepts (any, if the spec names none); a multi-input model takes the
instances of its inputs' modalities when every input's modality is among them. For each such
model, its instances are written durably under ``<work_dir>/jobs/<id>/input/`` (as
``POST /v1/models/{name}/jobs`` writes them: fsync'd, before the answer) and a job of source
``stow`` is queued in the JSON format; ``GET /v1/jobs/{id}`` follows it and
``GET /v1/jobs/{id}/result`` answers what predict would have answered.

The answer is a standard Store Instances Response (PS3.18 §10.5.3, DICOM JSON): 200 when every
instance was accepted, 202 when some were not (the Failed SOP Sequence lists them with Failure
Reason 0xC000, *cannot understand*), 409 when none was. The Referenced SOP Sequence lists every
instance accepted — those no model takes too: accepted, not processed. Where to find the jobs
travels in a private block (creator ``MEDSERVE``, (0011,1001) UT holding JSON
``{"request_id", "jobs": [{"id", "model", "url"}]}``), as dicomweb-client hands the response
dataset, not its headers, to its caller.
"""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import dataclass

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from jobs import JobStore
from preprocessing import PreprocessingError, open_instance
from preprocessing.attributes import header_text

from ...catalog import ModelCard
from ...errors import GatewayError
from ...job_runner import job_folder, wake_job_workers, write_input
from ...schemas import ErrorBody
from ...uploads import DicomPart, UploadLimits, receive
from ..deps import AdmissionDep, CatalogDep, SettingsDep
from .predict import _REQUEST_BODY

router = APIRouter(prefix="/dicomweb", tags=["dicomweb"])

PRIVATE_CREATOR = "MEDSERVE"
#: (0008,1197) Failure Reason 0xC000: "Cannot understand" — the instance could not be parsed.
CANNOT_UNDERSTAND = 0xC000
#: STOW-RS jobs answer in predict's default format.
STOW_FORMAT = "json"


@dataclass(frozen=True, slots=True)
class _Instance:
    """What STOW-RS reads of one accepted instance's header (never logged: UIDs only travel
    back to the sender and into the job's filters)."""

    part: DicomPart
    sop_class: str
    sop_instance: str
    modality: str
    study_uid: str
    series_uid: str


def _sop(uid_class: str, uid_instance: str, failure: int | None = None) -> dict:
    item = {"00081150": {"vr": "UI", "Value": [uid_class]}, "00081155": {"vr": "UI", "Value": [uid_instance]}}
    if failure is not None:
        item["00081197"] = {"vr": "US", "Value": [failure]}
    return item


def _identities(parts: list[DicomPart]) -> list[_Instance | None]:
    """Each part's header as :class:`_Instance`, None for a part that is not usable DICOM
    (answered in the Failed SOP Sequence, never as an error of the whole request). Runs off the
    event loop: a header can be large."""
    return [_identity(part) for part in parts]


def _identity(part: DicomPart) -> _Instance | None:
    """Read by preprocessing's reader, as the predict route reads (the same header checks and
    input limits): what predict would refuse is a failed instance here."""
    try:
        header = open_instance(part.data).header
    except PreprocessingError:
        return None
    return _Instance(
        part, header_text(header, "SOPClassUID"), header_text(header, "SOPInstanceUID"), header_text(header, "Modality").upper(),
        header_text(header, "StudyInstanceUID"), header_text(header, "SeriesInstanceUID"),
    )


def accepted_modalities(card: ModelCard) -> set[str]:
    if len(card.inputs) > 1:
        return {t.modality for t in card.inputs if t.modality}
    return set(card.preprocessing.modalities)


def routes_to(card: ModelCard, modalities: set[str]) -> bool:
    accepted = accepted_modalities(card)
    if len(card.inputs) > 1:
        return len(accepted) == len(card.inputs) and accepted <= modalities
    return not accepted or bool(accepted & modalities)


async def _routed_models(catalog, parts_modalities: set[str]) -> list[ModelCard]:
    cards = []
    for entry in await catalog.names():
        if entry["state"] != "READY":
            continue
        try:
            card = await catalog.card(entry["name"])
        except GatewayError:
            continue
        if routes_to(card, parts_modalities):
            cards.append(card)
    return cards


def _one(values: set[str]) -> str | None:
    """The UID all of a job's instances share (for ``GET /v1/jobs``' filters), else None."""
    return values.pop() if len(values) == 1 and "" not in values else None


async def _submit(store: JobStore, settings, card: ModelCard, instances: list[_Instance]) -> str:  # noqa: ANN001 - Settings
    """Write ``instances`` as a new job's input, durably, and queue the job; its id."""
    job_id = uuid.uuid4().hex
    folder = job_folder(settings.work_dir, job_id) / "input"
    try:
        await anyio.to_thread.run_sync(write_input, folder, [i.part for i in instances])
    except BaseException:  # a full disk: no half-written input left behind
        await anyio.to_thread.run_sync(lambda: shutil.rmtree(folder.parent, ignore_errors=True))
        raise
    study_uid, series_uid = _one({i.study_uid for i in instances}), _one({i.series_uid for i in instances})
    job, _ = await anyio.to_thread.run_sync(
        lambda: store.submit(
            card.name, "stow", str(folder), job_id=job_id, study_uid=study_uid, series_uid=series_uid,
            output_format=STOW_FORMAT, max_attempts=settings.job_max_attempts,
        )
    )
    return job.id


@router.post(
    "/studies",
    summary="STOW-RS: store instances; one job per model whose routing rule matches them",
    openapi_extra={"requestBody": _REQUEST_BODY},
    responses={
        200: {"description": "DICOM JSON Store Instances Response; the jobs made in private tag (0011,1001)", "content": {"application/dicom+json": {}}},
        202: {"description": "Some instances could not be read (Failed SOP Sequence); jobs made for the others", "content": {"application/dicom+json": {}}},
        409: {"description": "No instance could be read", "content": {"application/dicom+json": {}}},
        **{code: {"model": ErrorBody} for code in (400, 401, 403, 413, 415, 429)},
    },
)
async def store_instances(request: Request, catalog: CatalogDep, settings: SettingsDep, admission: AdmissionDep) -> JSONResponse:
    with admission.admit():
        parts = await receive(request, UploadLimits.from_settings(settings))
        accepted, failed = [], []
        for identity in await anyio.to_thread.run_sync(_identities, parts):
            if identity is None:
                failed.append(_sop("", "", CANNOT_UNDERSTAND))
            else:
                accepted.append(identity)
        made = []
        for card in await _routed_models(catalog, {i.modality for i in accepted}):
            modalities = accepted_modalities(card)
            taken = [i for i in accepted if not modalities or i.modality in modalities]
            made.append({"id": await _submit(request.app.state.job_store, settings, card, taken), "model": card.name})
        request.state.audit.model = ",".join(sorted(job["model"] for job in made))
        if made:
            wake_job_workers(request.app)

    jobs = [{**job, "url": f"/v1/jobs/{job['id']}"} for job in made]
    body: dict[str, object] = {
        "00081199": {"vr": "SQ", "Value": [_sop(i.sop_class, i.sop_instance) for i in accepted]},
        "00110010": {"vr": "LO", "Value": [PRIVATE_CREATOR]},
        "00111001": {"vr": "UT", "Value": [json.dumps({"request_id": request.state.request_id, "jobs": jobs})]},
    }
    if failed:
        body["00081198"] = {"vr": "SQ", "Value": failed}
    status = 409 if not accepted else 202 if failed else 200
    return JSONResponse(body, status_code=status, media_type="application/dicom+json")
