"""Run a model on uploaded DICOM by its task, and answer in the requested format."""

from __future__ import annotations

from fastapi import Response
from pydantic import BaseModel

from .audit import AuditRecord
from .catalog import ModelCard
from .config import Settings
from .drift import DRIFT_PUBLISHER, DriftMonitor, DriftObservation
from .errors import InvalidUpload, TaskUnsupported
from .formats import OutputFormat, effective_format
from .outputs import seg
from .predict import StageClock, activation_output, classify, classify_fusion
from .responses import classification_response, heatmap_response, segmentation_response
from .segmentation import SlidingWindowOptions, segment
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
    if card.task == "classification":
        heatmap = output_format == OutputFormat.HEATMAP
        result = await classify(parts, card, triton, clock, audit, request_id, with_activation_map=heatmap)
        _observe(monitor, result.drift)
        if heatmap:
            if slice_index is not None and not 0 <= slice_index < len(result.instances):
                raise InvalidUpload(f"instance {slice_index} is outside the {len(result.instances)} instances sent")
            return heatmap_response(card, result, slice_index)
        return classification_response(card, result, request_id)
    if card.task == "multi-input":
        result = await classify_fusion(parts, card, triton, clock, audit, request_id)
        _observe(monitor, result.drift)
        return classification_response(card, result, request_id)
    if card.task in ("segmentation-2d", "segmentation-3d"):
        options = SlidingWindowOptions(settings.sliding_window_batch_size, settings.sliding_window_overlap, settings.sliding_window_concurrency)
        check_sources = seg.check_sources if output_format == OutputFormat.SEG else None
        result = await segment(parts, card, triton, clock, audit, request_id, options, check_sources)
        _observe(monitor, result.drift)
        if slice_index is not None and not 0 <= slice_index < len(result.labels_map):
            raise InvalidUpload(f"slice {slice_index} is outside the series' {len(result.labels_map)} slices")
        return segmentation_response(card, result, output_format, clock.finish(), request_id, slice_index)
    raise TaskUnsupported(f"model {card.name!r} has task {card.task!r}, which this gateway version does not serve")


def _observe(monitor: DriftMonitor | None, observations: list[DriftObservation]) -> None:
    if monitor is not None:
        for observation in observations:
            monitor.observe(observation.numeric, observation.categorical)
        DRIFT_PUBLISHER.observed(monitor)
