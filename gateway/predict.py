"""One prediction, stage by stage: receive → decode → preprocess → infer → postprocess.

Stages are timed (``StageClock``) and exported as Prometheus histograms. CPU-bound stages
run in worker threads so that the event loop keeps serving other requests meanwhile.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter as TallyCounter
from dataclasses import dataclass, field
from typing import Any

import anyio
import numpy as np
from pydicom.dataset import Dataset

from preprocessing import Instance, open_instance, preprocess_instance
from preprocessing.attributes import header_text

from . import postprocess
from .audit import AuditRecord
from .catalog import ModelCard
from .drift import DriftObservation, input_features, merge
from .errors import InferenceFailed, InputMismatch, OutputUnavailable
from .metrics import INPUTS, MANUFACTURER_VALUES, MODALITY_VALUES, STAGE_LATENCY, TRANSFER_SYNTAX_VALUES
from .triton import TritonClient
from .uploads import DicomPart


@dataclass
class StageClock:
    """Wall time per stage in ms, observed into ``medserve_stage_duration_seconds``."""

    model: str
    ms: dict[str, float] = field(default_factory=dict)
    _start: float = field(default_factory=time.perf_counter)

    def record(self, stage: str, started: float) -> None:
        elapsed = time.perf_counter() - started
        self.ms[stage] = self.ms.get(stage, 0.0) + elapsed * 1000
        STAGE_LATENCY.labels(self.model, stage).observe(elapsed)

    def finish(self) -> dict[str, float]:
        timings = {stage: round(self.ms.get(stage, 0.0), 3) for stage in ("receive", "decode", "preprocess", "infer", "postprocess")}
        timings["total"] = round((time.perf_counter() - self._start) * 1000, 3)
        return timings


@dataclass(frozen=True)
class InstanceClassification:
    sop_instance_uid: str
    probabilities: list[tuple[str, float]]
    applied: dict[str, Any]
    source: Instance | None = None
    activation_map: np.ndarray | None = None  # model grid, [0, 1]; only when asked for


@dataclass(frozen=True)
class ClassificationResult:
    model_version: str
    instances: list[InstanceClassification]
    timings_ms: dict[str, float]
    drift: list[DriftObservation] = field(default_factory=list)


def prediction_features(ranked: list[tuple[str, float]]) -> DriftObservation:
    return DriftObservation({f"prediction.{label}": p for label, p in ranked}, {"prediction.top_label": ranked[0][0]})


def _open_all(parts: list[DicomPart]) -> list[Instance]:
    """Parse every header; uncompressed pixels stay a zero-copy view on the upload, compressed
    ones are decoded by preprocessing, frame by frame."""
    return [open_instance(part.data) for part in parts]


def count_inputs(card: ModelCard, headers: list[Dataset], audit: AuditRecord) -> None:
    """Input-mix counters (bounded label values) and the hashed UIDs for the audit trail."""
    mix: TallyCounter[tuple[str, str, str]] = TallyCounter()
    for ds in headers:
        mix[(header_text(ds, "Modality"), header_text(ds, "Manufacturer"), str(ds.file_meta.get("TransferSyntaxUID", "")))] += 1
        audit.add_instance(header_text(ds, "StudyInstanceUID"), header_text(ds, "SeriesInstanceUID"), header_text(ds, "SOPInstanceUID"))
    for (modality, manufacturer, syntax), count in mix.items():  # a series is one mix: one increment
        INPUTS.labels(
            card.name,
            MODALITY_VALUES(_printable(modality, 16)),
            MANUFACTURER_VALUES(_printable(manufacturer, 32)),
            TRANSFER_SYNTAX_VALUES(_printable(syntax, 64)),
        ).inc(count)


def _printable(value: str, length: int) -> str:
    return "".join(c for c in value if c.isalnum() or c in " -_.")[:length].strip() or "unknown"


def _probability_output(card: ModelCard) -> str:
    output = next((o for o in card.outputs if o.meaning == "class_probabilities"), None)
    if output is None:
        raise OutputUnavailable(f"model {card.name!r} has no class_probabilities output")
    return output.name


def activation_output(card: ModelCard) -> str | None:
    return next((o.name for o in card.outputs if o.meaning == "activation_map"), None)


async def classify(
    parts: list[DicomPart],
    card: ModelCard,
    triton: TritonClient,
    clock: StageClock,
    audit: AuditRecord,
    request_id: str,
    with_activation_map: bool = False,
) -> ClassificationResult:
    """Classify every instance; all go to Triton as batches of at most ``max_batch_size``.
    The activation map output is requested only when the answer needs it."""
    if len(card.inputs) != 1:
        raise InferenceFailed(f"model {card.name!r} takes {len(card.inputs)} inputs; send one series per input")
    output_name = _probability_output(card)
    activation_name = activation_output(card) if with_activation_map else None
    requested = [output_name, activation_name] if activation_name else [output_name]

    started = time.perf_counter()
    instances = await anyio.to_thread.run_sync(_open_all, parts)
    clock.record("decode", started)
    count_inputs(card, [i.header for i in instances], audit)

    started = time.perf_counter()
    prepared = await anyio.to_thread.run_sync(lambda: [preprocess_instance(i, card.preprocessing) for i in instances])
    clock.record("preprocess", started)

    started = time.perf_counter()
    batch = np.stack([p.array for p in prepared])
    step = max(card.max_batch_size, 1)
    answers = await asyncio.gather(
        *(
            triton.infer(card.name, {card.inputs[0].name: batch[i : i + step]}, requested, request_id=request_id)
            for i in range(0, len(batch), step)
        )
    )
    probabilities = np.concatenate([outputs[output_name] for outputs, _ in answers])
    activations = np.concatenate([outputs[activation_name] for outputs, _ in answers]) if activation_name else [None] * len(batch)
    version = answers[0][1]
    clock.record("infer", started)

    started = time.perf_counter()
    results = [
        InstanceClassification(str(i.header.get("SOPInstanceUID", "")), postprocess.classification(card, row), p.applied, i, activation)
        for i, row, p, activation in zip(instances, probabilities, prepared, activations)
    ]
    drift = [
        merge(input_features(card.inputs[0].name, p.array, i.header), prediction_features(r.probabilities))
        for i, p, r in zip(instances, prepared, results)
    ]
    clock.record("postprocess", started)
    audit.model_version = version
    return ClassificationResult(version, results, clock.finish(), drift)


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


async def classify_fusion(
    parts: list[DicomPart], card: ModelCard, triton: TritonClient, clock: StageClock, audit: AuditRecord, request_id: str
) -> ClassificationResult:
    """Multi-input classification (e.g. CT + PET): one answer per set of paired instances."""
    output_name = _probability_output(card)
    started = time.perf_counter()
    opened = await anyio.to_thread.run_sync(_open_all, parts)
    clock.record("decode", started)
    headers = [i.header for i in opened]
    assigned = {name: [opened[k] for k in indices] for name, indices in match_inputs(card, parts, headers).items()}
    count_inputs(card, headers, audit)

    started = time.perf_counter()

    def prepare() -> dict[str, list]:
        return {
            t.name: [preprocess_instance(instance, t.preprocessing or card.preprocessing) for instance in assigned[t.name]]
            for t in card.inputs
        }

    prepared = await anyio.to_thread.run_sync(prepare)
    clock.record("preprocess", started)

    started = time.perf_counter()
    feeds = {name: np.stack([p.array for p in items]) for name, items in prepared.items()}
    total, step = len(next(iter(feeds.values()))), max(card.max_batch_size, 1)
    answers = await asyncio.gather(
        *(
            triton.infer(card.name, {name: batch[i : i + step] for name, batch in feeds.items()}, [output_name], request_id=request_id)
            for i in range(0, total, step)
        )
    )
    probabilities = np.concatenate([outputs[output_name] for outputs, _ in answers])
    clock.record("infer", started)

    started = time.perf_counter()
    first = card.inputs[0].name
    instances = [
        InstanceClassification(
            str(assigned[first][k].header.get("SOPInstanceUID", "")),
            postprocess.classification(card, probabilities[k]),
            {name: items[k].applied for name, items in prepared.items()},
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
    audit.model_version = answers[0][1]
    return ClassificationResult(answers[0][1], instances, clock.finish(), drift)
