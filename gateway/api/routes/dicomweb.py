"""DICOMweb STOW-RS: ``POST /dicomweb/studies`` accepts instances and runs the models whose
routing rules match them.

Routing rule: a single-input model runs on the instances whose (0008,0060) *Modality* its
preprocessing spec accepts (any, if the spec names none); a multi-input model runs when every
input's modality is among the instances, on those instances. medserve is stateless: instances are processed, not
stored. The answer is a standard STOW-RS response (PS3.18 §10.5.3, DICOM JSON): the
Referenced SOP Sequence lists every instance processed, the Failed SOP Sequence those that
could not be, and the predictions of every model that ran travel in a private block
(creator ``MEDSERVE``, (0011,1001) UT holding JSON).
"""

from __future__ import annotations

import json
import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
import anyio

from preprocessing import PreprocessingError, open_instance
from preprocessing.attributes import header_text

from ...catalog import ModelCard
from ...errors import GatewayError
from ...dispatch import run_model
from ...stages import StageClock
from ...schemas import ErrorBody
from ...uploads import DicomPart, UploadLimits, receive
from ..deps import AdmissionDep, CatalogDep, SettingsDep, TritonDep
from .predict import _REQUEST_BODY

router = APIRouter(prefix="/dicomweb", tags=["dicomweb"])

PRIVATE_CREATOR = "MEDSERVE"
#: (0008,1197) Failure Reason 0xC000: "Cannot understand" — the instance could not be parsed.
CANNOT_UNDERSTAND = 0xC000


def _sop(uid_class: str, uid_instance: str, failure: int | None = None) -> dict:
    item = {"00081150": {"vr": "UI", "Value": [uid_class]}, "00081155": {"vr": "UI", "Value": [uid_instance]}}
    if failure is not None:
        item["00081197"] = {"vr": "US", "Value": [failure]}
    return item


def _identities(parts: list[DicomPart]) -> list[tuple[str, str, str] | None]:
    """(SOP Class UID, SOP Instance UID, Modality) of each part's header, None for a part that
    is not usable DICOM (answered in the Failed SOP Sequence, never as an error of the whole
    request). Runs off the event loop: a header can be large."""
    return [_identity(part.data) for part in parts]


def _identity(data: bytes) -> tuple[str, str, str] | None:
    """Read by preprocessing's reader, as the predict route reads (the same header checks and
    input limits): what predict would refuse is a failed instance here."""
    try:
        header = open_instance(data).header
    except PreprocessingError:
        return None
    return header_text(header, "SOPClassUID"), header_text(header, "SOPInstanceUID"), header_text(header, "Modality").upper()


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


@router.post(
    "/studies",
    summary="STOW-RS: send instances; every model whose routing rule matches runs on them",
    openapi_extra={"requestBody": _REQUEST_BODY},
    responses={
        200: {"description": "DICOM JSON STOW-RS response; predictions in private tag (0011,1001)", "content": {"application/dicom+json": {}}},
        202: {"description": "Some instances or models failed (Failed SOP Sequence / per-model errors)", "content": {"application/dicom+json": {}}},
        409: {"description": "No instance could be processed", "content": {"application/dicom+json": {}}},
        **{code: {"model": ErrorBody} for code in (400, 401, 403, 413, 415, 429)},
    },
)
async def store_instances(
    request: Request, catalog: CatalogDep, triton: TritonDep, settings: SettingsDep, admission: AdmissionDep
) -> JSONResponse:
    with admission.admit():
        started = time.perf_counter()
        parts = await receive(request, UploadLimits.from_settings(settings))
        receive_ms = (time.perf_counter() - started) * 1000
        referenced, failed, by_modality = [], [], {}
        for part, identity in zip(parts, await anyio.to_thread.run_sync(_identities, parts)):
            if identity is None:
                failed.append(_sop("", "", CANNOT_UNDERSTAND))
                continue
            sop_class, sop_instance, modality = identity
            referenced.append((sop_class, sop_instance))
            by_modality.setdefault(modality, []).append(part)

        predictions: dict[str, object] = {}
        for card in await _routed_models(catalog, set(by_modality)):
            accepted = accepted_modalities(card) or set(by_modality)
            model_parts: list[DicomPart] = [p for m, ps in by_modality.items() if m in accepted for p in ps]
            clock = StageClock(card.name)
            clock.ms["receive"] = receive_ms
            try:
                result = await run_model(
                    model_parts, card, triton, clock, request.state.audit, request.state.request_id, settings, monitor=catalog.monitor(card)
                )
                predictions[card.name] = result.model_dump()
            except (GatewayError, PreprocessingError) as exc:
                predictions[card.name] = {"error": {"code": exc.code, "message": exc.message}}
        request.state.audit.model = ",".join(sorted(predictions))

    body: dict[str, object] = {
        "00081199": {"vr": "SQ", "Value": [_sop(c, i) for c, i in referenced]},
        "00110010": {"vr": "LO", "Value": [PRIVATE_CREATOR]},
        "00111001": {"vr": "UT", "Value": [json.dumps({"request_id": request.state.request_id, "predictions": predictions})]},
    }
    if failed:
        body["00081198"] = {"vr": "SQ", "Value": failed}
    model_failed = any(isinstance(p, dict) and "error" in p for p in predictions.values())
    status = 409 if not referenced else 202 if failed or model_failed else 200
    return JSONResponse(body, status_code=status, media_type="application/dicom+json")
