"""A segmentation cascade: one served model name, two Triton models (see :mod:`contract.cascade`).

The served model's card names its ``localiser``; per request the series is loaded once, the
localiser runs on all of it, the region it found is cropped from the loaded volume and
segmented by the served model, and the labels are pasted back and put onto the source grid.
The steps between the model calls are :mod:`postprocessing.cascade`'s — the same code export
verifies against PyTorch. ``timings_ms`` adds each stage's own preprocess / infer /
postprocess (``localiser.infer``, ``model.infer``, ...) to the totals.
"""

from __future__ import annotations

import time
from dataclasses import replace

import anyio
import numpy as np

from contract import ModelCard
from postprocessing.cascade import labels_on_source, localiser_input, localiser_region, stage_input, stage_labels
from preprocessing import SeriesPlan
from preprocessing.pipeline import load_series_volume

from ..catalog import parse_model_card
from ..errors import ModelMisconfigured, RegionNotFound
from ..quality import WARNINGS_KEY, check_input
from .context import InferenceContext
from .segmentation import _ScoreClient, _SourceLabels, inference_deadline, segmentation_output, volume_drift


async def localiser_card(context: InferenceContext) -> ModelCard:
    """The card of the served model's localiser, read from Triton like any card."""
    assert context.card.cascade is not None
    name = context.card.cascade.localiser
    card = parse_model_card(await context.triton.model_config(name))
    if card.cascade is not None:
        raise ModelMisconfigured(f"model {context.card.name!r}: its localiser {name!r} is itself a cascade")
    return card


async def cascade_labels(context: InferenceContext, plan: SeriesPlan, scores: _ScoreClient) -> _SourceLabels:
    """Both stages on one loaded series; the labels on the source grid."""
    card, clock = context.card, context.clock
    assert card.cascade is not None
    first_card = await localiser_card(context)
    first_scores = _ScoreClient(replace(context, card=first_card))
    first_output = segmentation_output(first_card)

    async def timed(stage: str, step: str, work):
        started = time.perf_counter()
        try:
            return await work()
        finally:
            clock.record(step, started, part=f"{stage}.{step}")

    base = await timed("localiser", "preprocess", lambda: anyio.to_thread.run_sync(load_series_volume, plan, first_card.preprocessing))
    first = await timed("localiser", "preprocess", lambda: anyio.to_thread.run_sync(localiser_input, base, first_card.preprocessing))
    check_input(first_card, first.applied, audit=context.audit)  # the localiser's gate: the whole series
    async with inference_deadline(card, context.triton.timeout_s):
        first_result = await timed("localiser", "infer", lambda: first_scores.raw(first.array[None]))
        found = await timed("localiser", "postprocess", lambda: anyio.to_thread.run_sync(
            localiser_region, _class_scores(first_result), first, first_output.postprocessing, card.cascade.region, base))
        if found.box is None:
            raise RegionNotFound(
                f"the localiser {first_card.name!r} of model {card.name!r} found no region of class "
                f"{card.cascade.region.label} in this series, so its second stage has nothing to run on"
            )
        second = await timed("model", "preprocess", lambda: anyio.to_thread.run_sync(stage_input, base, card.preprocessing, found))
        check_input(card, second.applied, audit=context.audit)  # the model's own gate: the region it runs on
        second_result = await timed("model", "infer", lambda: scores.raw(second.array[None]))
    started = time.perf_counter()
    output = scores.output

    def to_source() -> np.ndarray:
        on_base = stage_labels(_class_scores(second_result), second, output.postprocessing, found.box, base.values.shape[:3])
        return labels_on_source(on_base, base, output.postprocessing)

    labels_map = await anyio.to_thread.run_sync(to_source)
    clock.record("model.postprocess", started)
    warnings = [*first.applied.get(WARNINGS_KEY, []), *second.applied.get(WARNINGS_KEY, [])]
    applied = {
        **second.applied,
        **({WARNINGS_KEY: warnings} if warnings else {}),
        "cascade": {
            "localiser": {"model": first_card.name, "model_version": first_scores.version, "applied": first.applied},
            "region": [[part.start, part.stop] for part in found.box],
        },
    }
    return _SourceLabels(labels_map, applied, 2, volume_drift(card, second.array, plan), started)


def _class_scores(result: np.ndarray) -> np.ndarray:
    """One item's [C, d, h, w] float32 class scores from a model's [1, C, d, h, w] answer."""
    return np.asarray(result[0], dtype=np.float32)
