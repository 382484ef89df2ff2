"""``POST /v1/models/{name}/predict``: DICOM in, prediction out."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ...errors import EmptyBody, PayloadTooLarge, UnsupportedMediaType
from ...metrics import IN_FLIGHT
from ...predict import classify_instance
from ...schemas import ClassificationPublic, ErrorBody, LabelProbability, StageTimings
from ..deps import CatalogDep, SettingsDep, TritonDep

router = APIRouter(prefix="/v1/models", tags=["predict"])

DICOM_MEDIA_TYPE = "application/dicom"


async def read_body_capped(request: Request, limit_bytes: int) -> bytes:
    """The request body, refused with 413 as soon as it exceeds ``limit_bytes`` while
    streaming in (a declared Content-Length beyond the cap is refused before reading)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit_bytes:
        raise PayloadTooLarge(f"the body is {int(declared)} bytes; the limit is {limit_bytes}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit_bytes:
            raise PayloadTooLarge(f"the body exceeds the limit of {limit_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/{name}/predict",
    response_model=ClassificationPublic,
    summary="Run a model on one DICOM instance",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {DICOM_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
        }
    },
    responses={
        code: {"model": ErrorBody}
        for code in (400, 404, 413, 415, 422, 502, 503, 504)
    },
)
async def predict(
    name: str, request: Request, catalog: CatalogDep, triton: TritonDep, settings: SettingsDep
) -> ClassificationPublic:
    card = await catalog.card(name)
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != DICOM_MEDIA_TYPE:
        raise UnsupportedMediaType(f"send the DICOM file with Content-Type: {DICOM_MEDIA_TYPE} (got {media_type or 'none'})")
    body = await read_body_capped(request, settings.max_upload_bytes)
    if not body:
        raise EmptyBody("the request body is empty; send one DICOM Part 10 file")
    IN_FLIGHT.inc()
    try:
        result = await classify_instance(body, card, triton, request.state.request_id)
    finally:
        IN_FLIGHT.dec()
    return ClassificationPublic(
        model=card.name,
        model_version=result.model_version,
        task=card.task,
        top_label=result.probabilities[0][0],
        probabilities=[LabelProbability(label=label, probability=p) for label, p in result.probabilities],
        preprocessing=result.applied,
        timings_ms=StageTimings(**result.timings_ms),
        request_id=request.state.request_id,
    )
