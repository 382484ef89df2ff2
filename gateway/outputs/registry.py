"""The output formats the gateway answers, and everything derived from them.

Adding a format is a new ``gateway/outputs/<format>.py`` whose ``encoder(answer)`` is
declared by :func:`~gateway.outputs.encoder.output_format`, plus one entry in
:data:`ENCODERS`. The ``format`` enum, the media types, ``Accept`` negotiation
(:mod:`gateway.outputs.negotiation`), which formats a model answers (422 otherwise) and the
predict route's OpenAPI description all follow from that entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from fastapi import Response
from pydantic import BaseModel

from contract import Task

from ..errors import InvalidUpload, OutputUnavailable
from ..quality import answer_warnings
from . import csv, fhir, heatmap, json, nifti, png, rle, sc, seg, sr, viewer
from .encoder import Answer, OutputEncoder

if TYPE_CHECKING:
    from ..catalog import ModelCard

#: Every output format, in the order the API lists them; the first is the default.
ENCODERS: dict[str, OutputEncoder] = {
    encoder.name: encoder
    for encoder in (
        json.encoder,
        rle.encoder,
        png.encoder,
        nifti.encoder,
        seg.encoder,
        sr.encoder,
        sc.encoder,
        heatmap.encoder,
        csv.encoder,
        fhir.encoder,
        viewer.encoder,
    )
}

#: The ``format=`` values (``OutputFormat.JSON`` == ``"json"``, ...), in :data:`ENCODERS` order.
OutputFormat = StrEnum("OutputFormat", [(name.upper(), name) for name in ENCODERS])
OutputFormat.__doc__ = "An output format's ``format=`` name."
OutputFormat.__module__ = __name__

DEFAULT_FORMAT = OutputFormat(next(iter(ENCODERS)))

#: The media type each format answers with.
MEDIA_TYPES: dict[OutputFormat, str] = {OutputFormat(name): encoder.media_type for name, encoder in ENCODERS.items()}


def output_encoder(output_format: str) -> OutputEncoder:
    """The encoder registered for ``output_format`` (a ``format=`` name)."""
    return ENCODERS[output_format]


def available_formats(task: Task, has_activation_map: bool) -> list[OutputFormat]:
    """The formats a model of ``task`` answers, in :data:`ENCODERS` order."""
    return [OutputFormat(name) for name, encoder in ENCODERS.items() if encoder.applies(task, has_activation_map)]


def effective_format(output_format: OutputFormat, task: Task, has_activation_map: bool) -> OutputFormat:
    """The format to produce for a model of ``task``: the one asked for when it applies, else
    one that answers in its place (a classifier with an activation map asked for PNG answers
    its heatmap), else :class:`OutputUnavailable` (422) listing what the model answers."""
    available = available_formats(task, has_activation_map)
    if output_format in available:
        return OutputFormat(output_format)
    for name in available:
        if output_format in ENCODERS[name].answers_for:
            return name
    raise OutputUnavailable(
        f"format {str(output_format)!r} is not available for this {task} model; "
        f"use one of {', '.join(sorted(available))}"
    )


def encode(
    output_format: OutputFormat,
    card: ModelCard,
    result: Any,
    timings_ms: Mapping[str, float],
    request_id: str,
    slice_index: int | None = None,
) -> BaseModel | Response:
    """The answer to a prediction in ``output_format`` (as :func:`effective_format` chose it).

    ``result`` is the task's result; ``timings_ms``: stage timings in ms at the time of
    answering; ``slice_index``: the ``slice=`` option. A ``slice`` outside a segmented series
    is refused whatever the format (400 invalid_upload). Binary answers carry the model
    version in ``X-Model-Version`` and the input quality warnings the JSON would list in
    ``X-Medserve-Warnings`` (``code:feature``, comma-separated).
    """
    answer = Answer(card, result, timings_ms, request_id, slice_index)
    if answer.segmented and slice_index is not None and not 0 <= slice_index < len(result.labels_map):
        raise InvalidUpload(f"slice {slice_index} is outside the series' {len(result.labels_map)} slices")
    encoder = ENCODERS[output_format]
    encoded = encoder.encode(answer)
    if isinstance(encoded, BaseModel):
        return encoded
    headers = {"X-Model-Version": result.model_version, **encoded.headers}
    records = [result.applied] if answer.segmented else [instance.applied for instance in result.instances]
    if found := answer_warnings(records):  # what the JSON answer lists in ``warnings``
        headers["X-Medserve-Warnings"] = ", ".join(f"{w['code']}:{w['feature']}" for w in found)
    return Response(content=encoded.content, media_type=encoder.media_type, headers=headers)
