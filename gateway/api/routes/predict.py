"""``POST /v1/models/{name}/predict``: DICOM in, prediction out."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request

from ...predict import StageClock, run_model
from ...schemas import ClassificationPublic, ErrorBody
from ...uploads import DICOM, receive
from ..deps import AdmissionDep, CatalogDep, SettingsDep, TritonDep

router = APIRouter(prefix="/v1/models", tags=["predict"])

_BINARY = {"schema": {"type": "string", "format": "binary"}}
_REQUEST_BODY = {
    "required": True,
    "description": (
        "One DICOM instance (application/dicom); several instances of a series as DICOMweb STOW-RS sends them "
        '(multipart/related; type="application/dicom") or as multipart/form-data file fields (the field name can '
        "select a model input); or a ZIP of a series (application/zip)."
    ),
    "content": {
        DICOM: _BINARY,
        'multipart/related; type="application/dicom"': _BINARY,
        "multipart/form-data": {"schema": {"type": "object", "additionalProperties": {"type": "string", "format": "binary"}}},
        "application/zip": _BINARY,
    },
}
_ERRORS = {code: {"model": ErrorBody} for code in (400, 401, 403, 404, 406, 413, 415, 422, 429, 502, 503, 504)}


@router.post(
    "/{name}/predict",
    response_model=ClassificationPublic,
    summary="Run a model on DICOM",
    openapi_extra={"requestBody": _REQUEST_BODY},
    responses=_ERRORS,
)
async def predict(
    name: str, request: Request, catalog: CatalogDep, triton: TritonDep, settings: SettingsDep, admission: AdmissionDep
) -> ClassificationPublic:
    card = await catalog.card(name)
    with admission.admit():
        clock = StageClock(card.name)
        started = time.perf_counter()
        parts = await receive(request, settings.max_upload_bytes, settings.max_series_instances)
        clock.record("receive", started)
        response = await run_model(parts, card, triton, clock, request.state.audit, request.state.request_id)
    return response
