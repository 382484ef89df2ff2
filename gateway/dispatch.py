"""Run a model on uploaded DICOM by its task, and answer in the requested format.

The task is a lookup in :mod:`gateway.tasks` (an unknown one is 501 ``task_unsupported``),
the answer one in :mod:`gateway.outputs.registry`; what the output format needs before the
model runs (its source checks, an activation map) travels in the task's context.
"""

from __future__ import annotations

from fastapi import Response
from pydantic import BaseModel

from contract import ModelCard

from .audit import AuditRecord
from .config import Settings
from .drift import DRIFT_PUBLISHER, DriftMonitor, DriftObservation
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
    output_format = effective_format(output_format, card.task, activation_output(card) is not None)
    runner = runner_for(card)
    encoder = output_encoder(output_format)
    context = InferenceContext(
        parts,
        card,
        triton,
        clock,
        audit,
        request_id,
        settings,
        check_sources=encoder.check_sources,
        with_activation_map=encoder.needs_activation_map,
    )
    result = await runner(context)
    _observe(monitor, result.drift)
    return encode(output_format, card, result, clock.finish(), request_id, slice_index)


def _observe(monitor: DriftMonitor | None, observations: list[DriftObservation]) -> None:
    if monitor is not None:
        for observation in observations:
            monitor.observe(observation.numeric, observation.categorical)
        DRIFT_PUBLISHER.observed(monitor)
