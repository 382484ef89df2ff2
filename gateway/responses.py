"""Prediction results → HTTP answers in the format the client asked for.

Each format is an encoder in ``gateway/outputs/``; :func:`gateway.outputs.registry.encode`
is the one entry point. These functions keep dispatch's calls working until it calls it.
"""

from __future__ import annotations

from typing import Any

from fastapi import Response
from pydantic import BaseModel

from .catalog import ModelCard
from .outputs.registry import OutputFormat, encode


def classification_response(card: ModelCard, result: Any, request_id: str) -> BaseModel:
    return encode(OutputFormat.JSON, card, result, result.timings_ms, request_id)  # type: ignore[return-value]


def segmentation_response(
    card: ModelCard,
    result: Any,
    output_format: OutputFormat,
    timings: dict[str, float],
    request_id: str,
    slice_index: int | None = None,
) -> BaseModel | Response:
    return encode(output_format, card, result, timings, request_id, slice_index)


def heatmap_response(card: ModelCard, result: Any, instance_index: int | None) -> Response:
    return encode(OutputFormat.HEATMAP, card, result, result.timings_ms, "", instance_index)  # type: ignore[return-value]
