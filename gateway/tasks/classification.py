"""``classification``: one answer (labels with probabilities) per instance sent.

Every instance is opened, preprocessed on its own and sent to Triton with the others in
batches of at most ``max_batch_size``. The activation map output is requested only when the
answer needs it (``format=heatmap``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import anyio
import numpy as np

from contract import ModelCard, OutputMeaning, Task
from preprocessing import Instance, preprocess_instance

from ..drift import DriftObservation, input_features, merge
from ..errors import InferenceFailed, OutputUnavailable
from ..inputs import count_inputs, open_parts
from ..quality import check_input
from .batching import infer_in_batches
from .context import InferenceContext
from .registry import register


def ranked_probabilities(card: ModelCard, probabilities: np.ndarray) -> list[tuple[str, float]]:
    """(label, probability) pairs, highest first, from a [1, n_labels] probability output."""
    row = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    if row.shape[0] != len(card.labels):
        raise InferenceFailed(f"model {card.name!r} returned {row.shape[0]} scores for {len(card.labels)} labels")
    if not np.isfinite(row).all():
        raise InferenceFailed(f"model {card.name!r} returned non-finite probabilities")
    row = np.clip(row, 0.0, 1.0)
    return sorted(zip(card.labels, row.tolist()), key=lambda pair: pair[1], reverse=True)


@dataclass(frozen=True)
class InstanceClassification:
    sop_instance_uid: str
    probabilities: list[tuple[str, float]]  # (label, probability), highest first
    applied: dict[str, Any]  # the preprocessing actually applied (per input, for multi-input)
    source: Instance | None = None
    activation_map: np.ndarray | None = None  # model grid, [0, 1]; only when asked for


@dataclass(frozen=True)
class ClassificationResult:
    model_version: str
    instances: list[InstanceClassification]
    drift: list[DriftObservation] = field(default_factory=list)


def prediction_features(ranked: list[tuple[str, float]]) -> DriftObservation:
    return DriftObservation({f"prediction.{label}": p for label, p in ranked}, {"prediction.top_label": ranked[0][0]})


def probability_output(card: ModelCard) -> str:
    """Name of the model's ``class_probabilities`` output, or :class:`OutputUnavailable`."""
    output = next((o for o in card.outputs if o.meaning == OutputMeaning.CLASS_PROBABILITIES), None)
    if output is None:
        raise OutputUnavailable(f"model {card.name!r} has no class_probabilities output")
    return output.name


def activation_output(card: ModelCard) -> str | None:
    """Name of the model's ``activation_map`` output, None when it was exported without one."""
    return next((o.name for o in card.outputs if o.meaning == OutputMeaning.ACTIVATION_MAP), None)


@register(Task.CLASSIFICATION)
async def classify(context: InferenceContext) -> ClassificationResult:
    """Classify every instance of the request."""
    card, clock = context.card, context.clock
    if len(card.inputs) != 1:
        raise InferenceFailed(f"model {card.name!r} takes {len(card.inputs)} inputs; send one series per input")
    output_name = probability_output(card)
    activation_name = activation_output(card) if context.with_activation_map else None
    requested = [output_name, activation_name] if activation_name else [output_name]

    started = time.perf_counter()
    instances = await anyio.to_thread.run_sync(open_parts, context.parts)
    clock.record("decode", started)
    count_inputs(card, [i.header for i in instances], context.audit)

    started = time.perf_counter()
    prepared = await anyio.to_thread.run_sync(lambda: [preprocess_instance(i, card.preprocessing) for i in instances])
    clock.record("preprocess", started)
    for instance, item in zip(instances, prepared):
        check_input(card, item.applied, instance.header, audit=context.audit)

    started = time.perf_counter()
    answer = await infer_in_batches(context, {card.inputs[0].name: np.stack([p.array for p in prepared])}, requested)
    probabilities = answer.outputs[output_name]
    activations = answer.outputs[activation_name] if activation_name else [None] * len(prepared)
    clock.record("infer", started)

    started = time.perf_counter()
    results = [
        InstanceClassification(str(i.header.get("SOPInstanceUID", "")), ranked_probabilities(card, row), p.applied, i, activation)
        for i, row, p, activation in zip(instances, probabilities, prepared, activations)
    ]
    drift = [
        merge(input_features(card.inputs[0].name, p.array, i.header), prediction_features(r.probabilities))
        for i, p, r in zip(instances, prepared, results)
    ]
    clock.record("postprocess", started)
    context.audit.model_version = answer.model_version
    return ClassificationResult(answer.model_version, results, drift)
