"""Run a model on uploaded DICOM by its task, and answer in the requested format.

The task is a lookup in :mod:`gateway.tasks` (an unknown one is 501 ``task_unsupported``),
the answer one in :mod:`gateway.outputs.registry`; what the output format needs before the
model runs (its source checks, an activation map) travels in the task's context.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import Response
from pydantic import BaseModel

from contract import ModelCard
from preprocessing import SeriesPlan

from .audit import AuditRecord
from .config import Settings
from .drift import DRIFT_PUBLISHER, DriftMonitor, DriftObservation
from .errors import GatewayError
from .outputs.registry import DEFAULT_FORMAT, OutputFormat, effective_format, encode, output_encoder
from .stages import StageClock
from .tasks import InferenceContext, activation_output, runner_for
from .triton import TritonClient
from .uploads import DicomPart


async def run_model(
    parts: list[DicomPart],
    card: ModelCard,
    triton: TritonClient,
    clock: StageClock,
    audit: AuditRecord,
    request_id: str,
    settings: Settings,
    output_format: OutputFormat = DEFAULT_FORMAT,
    slice_index: int | None = None,
    monitor: DriftMonitor | None = None,
) -> BaseModel | Response:
    """Run the model; every successful answer's features go to the drift ``monitor``."""
    answer, _ = await run_model_outputs(parts, card, triton, clock, audit, request_id, settings, output_format, (), slice_index, monitor)
    return answer


async def run_model_outputs(
    parts: list[DicomPart],
    card: ModelCard,
    triton: TritonClient,
    clock: StageClock,
    audit: AuditRecord,
    request_id: str,
    settings: Settings,
    output_format: OutputFormat,
    also: Sequence[str],
    slice_index: int | None = None,
    monitor: DriftMonitor | None = None,
) -> tuple[BaseModel | Response, dict[str, Response | GatewayError]]:
    """Run the model once and answer in ``output_format``, and in each format of ``also``
    (the outputs a job's deliveries send): each is its encoded answer, or the
    :class:`GatewayError` that says why this result cannot be given in it. Only
    ``output_format``'s source checks run before the model: another format that cannot be made
    costs its own output, not the answer."""
    has_activation_map = activation_output(card) is not None
    output_format = effective_format(output_format, card.task, has_activation_map)
    extra: dict[str, OutputFormat | GatewayError] = {}
    for name in also:
        try:
            extra[name] = effective_format(OutputFormat(name), card.task, has_activation_map)
        except GatewayError as exc:
            extra[name] = exc
    encoders = [output_encoder(output_format)] + [output_encoder(f) for f in extra.values() if isinstance(f, OutputFormat)]

    def check_sources(plan: SeriesPlan) -> None:
        """``output_format``'s checks refuse the request; another format's only mark it unavailable."""
        if (check := encoders[0].check_sources) is not None:
            check(plan)
        for name, chosen in extra.items():
            if isinstance(chosen, OutputFormat) and (check := output_encoder(chosen).check_sources) is not None:
                try:
                    check(plan)
                except GatewayError as exc:
                    extra[name] = exc

    context = InferenceContext(
        parts,
        card,
        triton,
        clock,
        audit,
        request_id,
        settings,
        check_sources=check_sources if any(encoder.check_sources for encoder in encoders) else None,
        with_activation_map=any(encoder.needs_activation_map for encoder in encoders),
    )
    result = await runner_for(card)(context)
    _observe(monitor, result.drift)
    answer = encode(output_format, card, result, clock.finish(), request_id, slice_index)
    others: dict[str, Response | GatewayError] = {}
    for name, chosen in extra.items():
        if isinstance(chosen, GatewayError):
            others[name] = chosen
            continue
        try:
            encoded = encode(chosen, card, result, clock.finish(), request_id)
        except GatewayError as exc:
            others[name] = exc
        else:
            others[name] = encoded if isinstance(encoded, Response) else Response(encoded.model_dump_json(by_alias=True), media_type="application/json")
    return answer, others


def _observe(monitor: DriftMonitor | None, observations: list[DriftObservation]) -> None:
    if monitor is not None:
        for observation in observations:
            monitor.observe(observation.numeric, observation.categorical)
        DRIFT_PUBLISHER.observed(monitor)
