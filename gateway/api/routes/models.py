"""Model discovery: what Triton serves, and what each model expects."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, Request

from ...errors import ReportUnavailable
from ...schemas import DriftPointPublic, DriftPublic, ErrorBody, ModelList, ModelPublic, ModelSummary, OutputPublic, TensorPublic
from ..deps import CatalogDep, TritonDep

router = APIRouter(prefix="/v1/models", tags=["models"])
_ERRORS = {code: {"model": ErrorBody} for code in (401, 403, 404, 422, 503)}


@router.get(
    "",
    response_model=ModelList,
    response_model_exclude_defaults=True,  # servable / reason only for a model this gateway cannot serve
    summary="Models in Triton's repository, and which of them this gateway cannot serve",
    responses={code: {"model": ErrorBody} for code in (401, 403, 503)},
)
async def list_models(catalog: CatalogDep) -> ModelList:
    return ModelList(models=[ModelSummary.model_validate(entry, from_attributes=True) for entry in await catalog.entries()])


@router.get("/{name}", response_model=ModelPublic, summary="One model's task, labels and preprocessing", responses=_ERRORS)
async def get_model(name: str, request: Request, catalog: CatalogDep, triton: TritonDep) -> ModelPublic:
    card = await catalog.card(name)
    request.state.model_name = card.name
    return ModelPublic(
        name=card.name,
        task=card.task,
        description=card.description,
        ready=await triton.model_ready(name),
        labels=card.labels,
        inputs=[
            TensorPublic(
                name=t.name,
                dtype=t.dtype,
                shape=t.shape,
                modality=t.modality,
                preprocessing=t.preprocessing.to_dict() if t.preprocessing else None,
            )
            for t in card.inputs
        ],
        outputs=[OutputPublic(name=o.name, meaning=o.meaning, labels=o.labels) for o in card.outputs],
        preprocessing=card.preprocessing.to_dict(),
        max_batch_size=card.max_batch_size,
        export_report_digest=card.export_report_digest,
    )


@router.get(
    "/{name}/report",
    summary="The model's export report: steps, variants with metrics and latency, gates, environment",
    description="The document `medserve export` wrote as `export_report.json`, carried in the model card (contract 1.3); "
    "404 `report_unavailable` for a model exported without it.",
    responses=_ERRORS,
)
async def get_report(name: str, request: Request, catalog: CatalogDep) -> dict[str, Any]:
    card = await catalog.card(name)
    request.state.model_name = card.name
    if card.export_report is None:
        raise ReportUnavailable(f"model {card.name!r} was exported without its report in the card; export it again to see it")
    return card.export_report


def _finite(scores: dict[str, dict[str, float]]) -> dict[str, dict[str, float | None]]:
    return {feature: {stat: value if math.isfinite(value) else None for stat, value in stats.items()} for feature, stats in scores.items()}


@router.get(
    "/{name}/drift",
    response_model=DriftPublic,
    summary="Drift scores of the model's recent inputs and predictions: now and per minute over the last hour",
    description="The answering gateway worker's own drift monitor (with several workers, each sees its share of the traffic; "
    "`/metrics` publishes the most recent of any worker).",
    responses=_ERRORS,
)
async def get_drift(name: str, request: Request, catalog: CatalogDep) -> DriftPublic:
    card = await catalog.card(name)
    request.state.model_name = card.name
    monitor = catalog.monitor(card)
    if monitor is None:  # exported without a drift reference: nothing is watched
        return DriftPublic(model=card.name, window_samples=0, min_samples=catalog.drift_min_samples, features={}, history=[])
    scores = _finite(monitor.scores())
    return DriftPublic(
        model=card.name,
        window_samples=monitor.samples,
        min_samples=monitor.min_samples,
        features={feature: scores.get(feature, {"psi": None}) for feature in monitor.features},
        history=[DriftPointPublic(at=datetime.fromtimestamp(at, timezone.utc), scores=_finite(point)) for at, point in monitor.history()],
    )
