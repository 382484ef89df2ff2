"""One prediction, stage by stage: decode → preprocess → infer → postprocess.

CPU-bound stages run in a worker thread so the event loop keeps serving other requests
while this one decodes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import anyio

from preprocessing import decode_pixels, preprocess_instance, read_dataset

from . import postprocess
from .catalog import ModelCard
from .errors import InferenceFailed
from .metrics import STAGE_LATENCY
from .triton import TritonClient


@dataclass
class StageClock:
    """Wall time per stage in ms."""

    model: str
    ms: dict[str, float] = field(default_factory=dict)
    _start: float = field(default_factory=time.perf_counter)

    def lap(self, stage: str, started: float) -> None:
        elapsed = time.perf_counter() - started
        self.ms[stage] = elapsed * 1000
        STAGE_LATENCY.labels(self.model, stage).observe(elapsed)

    def total_ms(self) -> float:
        return (time.perf_counter() - self._start) * 1000


@dataclass(frozen=True)
class ClassificationResult:
    model_version: str
    probabilities: list[tuple[str, float]]
    applied: dict[str, Any]
    timings_ms: dict[str, float]


def _decode(body: bytes):
    ds = read_dataset(body)
    decode_pixels(ds)  # pydicom caches the decoded array on the dataset
    return ds


async def classify_instance(body: bytes, card: ModelCard, triton: TritonClient, request_id: str) -> ClassificationResult:
    clock = StageClock(card.name)

    started = time.perf_counter()
    ds = await anyio.to_thread.run_sync(_decode, body)
    clock.lap("decode", started)

    started = time.perf_counter()
    prepared = await anyio.to_thread.run_sync(preprocess_instance, ds, card.preprocessing)
    clock.lap("preprocess", started)

    started = time.perf_counter()
    if len(card.inputs) != 1:
        raise InferenceFailed(f"model {card.name!r} takes {len(card.inputs)} inputs; send one series per input")
    output = next((o for o in card.outputs if o.meaning == "class_probabilities"), None)
    if output is None:
        raise InferenceFailed(f"model {card.name!r} has no class_probabilities output")
    outputs, version = await triton.infer(
        card.name, {card.inputs[0].name: prepared.array[None]}, [output.name], request_id=request_id
    )
    clock.lap("infer", started)

    started = time.perf_counter()
    ranked = postprocess.classification(card, outputs[output.name])
    clock.lap("postprocess", started)
    clock.ms["total"] = clock.total_ms()
    return ClassificationResult(version, ranked, prepared.applied, clock.ms)
