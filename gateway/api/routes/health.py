"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from ...catalog import ModelEntry
from ...errors import GatewayError
from ...metrics import exposition
from ...schemas import ErrorBody, Health, Readiness
from ..deps import CatalogDep, SettingsDep, TritonDep

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="The gateway process is alive")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Triton is reachable and every model in its repository is ready and servable",
    responses={503: {"model": Readiness, "description": "Triton unreachable, or a model not ready or not servable by this gateway"}},
)
async def readyz(triton: TritonDep, catalog: CatalogDep, settings: SettingsDep) -> JSONResponse:
    entries: list[ModelEntry] = []
    reachable = await triton.server_ready()
    if reachable:
        try:
            entries = await catalog.entries()
        except GatewayError:
            reachable = False
    models = {e.name: e.ready for e in entries}
    ready = reachable and bool(models) and all(models.values())
    # An open route: with API keys configured it says how many models are ready, not which.
    listed = {} if settings.api_keys else models
    reasons = {} if settings.api_keys else {e.name: e.reason or "" for e in entries if not e.servable}
    body = Readiness(
        status="ready" if ready else "not_ready", triton=reachable, models=listed, not_servable=reasons,
        models_ready=sum(models.values()), models_total=len(models),
    )
    headers = None if ready else {"Retry-After": str(settings.retry_after_s)}
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503, headers=headers)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
async def metrics() -> Response:
    return Response(exposition(), media_type=CONTENT_TYPE_LATEST)


__all__ = ["router", "ErrorBody"]
