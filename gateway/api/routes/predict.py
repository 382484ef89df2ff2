"""``POST /v1/models/{name}/predict``: DICOM in, prediction out."""

from __future__ import annotations

import time

from fastapi import APIRouter, Query, Request, Response

from ...dispatch import run_model
from ...outputs.negotiation import requested_format
from ...outputs.openapi import FORMAT_NAMES, binary_answers, predict_description
from ...stages import StageClock
from ...schemas import ClassificationPublic, ErrorBody, SegmentationPublic, ViewerPublic
from ...uploads import DICOM, UploadLimits, receive
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
_ERRORS = {code: {"model": ErrorBody} for code in (400, 401, 403, 404, 406, 413, 415, 422, 429, 501, 502, 503, 504)}


@router.post(
    "/{name}/predict",
    response_model=ClassificationPublic | SegmentationPublic | ViewerPublic,
    summary="Run a model on DICOM",
    description=predict_description(),
    openapi_extra={"requestBody": _REQUEST_BODY},
    responses={200: {"content": binary_answers()}, **_ERRORS},
)
async def predict(
    name: str,
    request: Request,
    catalog: CatalogDep,
    triton: TritonDep,
    settings: SettingsDep,
    admission: AdmissionDep,
    output: str | None = Query(
        None,
        alias="format",
        description="Output format (overrides Accept); an unknown one is answered 406 not_acceptable",
        json_schema_extra={"enum": FORMAT_NAMES},
    ),
    slice_index: int | None = Query(None, alias="slice", ge=0, description="Slice shown by format=png (default: most foreground), or instance shown by format=heatmap (default: the first)"),
) -> ClassificationPublic | SegmentationPublic | ViewerPublic | Response:
    card = await catalog.card(name)
    request.state.model_name = card.name
    output_format = requested_format(request)
    with admission.admit():
        clock = StageClock(card.name)
        started = time.perf_counter()
        parts = await receive(request, UploadLimits.from_settings(settings))
        clock.record("receive", started)
        response = await run_model(
            parts, card, triton, clock, request.state.audit, request.state.request_id, settings, output_format, slice_index,
            catalog.monitor(card),
        )
    return response
