"""``multi-input``: classification over paired instances of several inputs (e.g. CT + PET).

Instances are matched to the model's inputs by form-field name, else by (0008,0060)
*Modality*; every input gets the same number of instances, paired in upload order, and each
pair (triple, ...) gets one answer.
"""

from __future__ import annotations

import time

import anyio
import numpy as np
from pydicom.dataset import Dataset

from contract import ModelCard, Task
from preprocessing import preprocess_instance

from ..drift import input_features, merge
from ..errors import InputMismatch
from ..inputs import count_inputs, open_parts
from ..quality import check_input
from ..uploads import DicomPart
from .batching import infer_in_batches
from .classification import ClassificationResult, InstanceClassification, prediction_features, probability_output, ranked_probabilities
from .context import InferenceContext
from .registry import register


def match_inputs(card: ModelCard, parts: list[DicomPart], headers: list[Dataset]) -> dict[str, list[int]]:
    """Assign each instance (by its index in the upload) to a model input: by its form field
    when the field names an input, otherwise by (0008,0060) *Modality*. Every input needs the
    same number of instances; they are paired in upload order within each input."""
    names = {t.name for t in card.inputs}
    by_modality = {t.modality: t.name for t in card.inputs if t.modality}
    assigned: dict[str, list[int]] = {t.name: [] for t in card.inputs}
    for index, (part, ds) in enumerate(zip(parts, headers)):
        if part.field in names:
            assigned[part.field].append(index)
            continue
        modality = str(ds.get("Modality", "")).upper()
        if modality not in by_modality:
            raise InputMismatch(
                f"an instance with Modality {modality or 'missing'} matches no input of {card.name!r}; inputs: "
                + ", ".join(f"{t.name} ({t.modality or 'any'})" for t in card.inputs)
                + " — name the input with the form field"
            )
        assigned[by_modality[modality]].append(index)
    counts = {name: len(found) for name, found in assigned.items()}
    if min(counts.values()) == 0 or len(set(counts.values())) != 1:
        raise InputMismatch(f"model {card.name!r} needs the same number (>= 1) of instances for every input; got {counts}")
    return assigned


@register(Task.MULTI_INPUT)
async def classify_fusion(context: InferenceContext) -> ClassificationResult:
    """One answer per set of paired instances."""
    card, clock = context.card, context.clock
    output_name = probability_output(card)
    started = time.perf_counter()
    opened = await anyio.to_thread.run_sync(open_parts, context.parts)
    clock.record("decode", started)
    headers = [i.header for i in opened]
    assigned = {name: [opened[k] for k in indices] for name, indices in match_inputs(card, list(context.parts), headers).items()}
    count_inputs(card, headers, context.audit)

    started = time.perf_counter()

    def prepare() -> dict[str, list]:
        return {
            t.name: [preprocess_instance(instance, t.preprocessing or card.preprocessing) for instance in assigned[t.name]]
            for t in card.inputs
        }

    prepared = await anyio.to_thread.run_sync(prepare)
    clock.record("preprocess", started)
    for t in card.inputs:
        for item, instance in zip(prepared[t.name], assigned[t.name]):
            check_input(card, item.applied, instance.header, input_name=t.name, audit=context.audit)

    started = time.perf_counter()
    feeds = {name: np.stack([p.array for p in items]) for name, items in prepared.items()}
    answer = await infer_in_batches(context, feeds, [output_name])
    probabilities = answer.outputs[output_name]
    clock.record("infer", started)

    started = time.perf_counter()
    first = card.inputs[0].name
    total = len(feeds[first])
    instances = [
        InstanceClassification(
            str(assigned[first][k].header.get("SOPInstanceUID", "")),
            ranked_probabilities(card, probabilities[k]),
            {name: items[k].applied for name, items in prepared.items()},
            source=assigned[first][k],
        )
        for k in range(total)
    ]
    drift = [
        merge(
            *(input_features(t.name, prepared[t.name][k].array, assigned[t.name][k].header) for t in card.inputs),
            prediction_features(instances[k].probabilities),
        )
        for k in range(total)
    ]
    clock.record("postprocess", started)
    context.audit.model_version = answer.model_version
    return ClassificationResult(answer.model_version, instances, drift)
