"""Run a model on uploaded DICOM by its task, and answer in the requested format.

The task is a lookup in :mod:`gateway.tasks` (an unknown one is 501 ``task_unsupported``);
what the output needs before the model runs travels in the task's context.
"""

from __future__ import annotations

from fastapi import Response
from pydantic import BaseModel

from .audit import AuditRecord
from .catalog import ModelCard
from .config import Settings
from .drift import DRIFT_PUBLISHER, DriftMonitor, DriftObservation
from .errors import InvalidUpload
from .formats import OutputFormat, effective_format
from .outputs import seg
from .responses import classification_response, heatmap_response, segmentation_response
from .stages import StageClock
from .tasks import ClassificationResult, InferenceContext, SegmentationResult, TaskResult, activation_output, runner_for
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
    output_format: OutputFormat = OutputFormat.JSON,
    slice_index: int | None = None,
    monitor: DriftMonitor | None = None,
) -> BaseModel | Response:
    """Run the model; every successful answer's features go to the drift ``monitor``."""
    output_format = effective_format(output_format, card.task, activation_output(card) is not None)
    runner = runner_for(card)
    context = InferenceContext(
        parts,
        card,
        triton,
        clock,
        audit,
        request_id,
        settings,
        check_sources=seg.check_sources if output_format == OutputFormat.SEG else None,
        with_activation_map=output_format == OutputFormat.HEATMAP,
    )
    result = await runner(context)
    _observe(monitor, result.drift)
    return _answer(card, result, output_format, clock, request_id, slice_index)


def _answer(
    card: ModelCard, result: TaskResult, output_format: OutputFormat, clock: StageClock, request_id: str, slice_index: int | None
) -> BaseModel | Response:
    """The task's result in ``output_format``."""
    if isinstance(result, SegmentationResult):
        if slice_index is not None and not 0 <= slice_index < len(result.labels_map):
            raise InvalidUpload(f"slice {slice_index} is outside the series' {len(result.labels_map)} slices")
        return segmentation_response(card, result, output_format, clock.finish(), request_id, slice_index)
    assert isinstance(result, ClassificationResult)
    if output_format == OutputFormat.HEATMAP:
        if slice_index is not None and not 0 <= slice_index < len(result.instances):
            raise InvalidUpload(f"instance {slice_index} is outside the {len(result.instances)} instances sent")
        return heatmap_response(card, result, slice_index)
    return classification_response(card, result, request_id)


def _observe(monitor: DriftMonitor | None, observations: list[DriftObservation]) -> None:
    if monitor is not None:
        for observation in observations:
            monitor.observe(observation.numeric, observation.categorical)
        DRIFT_PUBLISHER.observed(monitor)
