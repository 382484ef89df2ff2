"""Segmentation, 2D and 3D, always answered on the grid of the series as sent.

- ``segmentation-2d``: each instance is prepared and segmented on its own (one batched Triton
  call per ``max_batch_size`` slices); the slices' label maps are resampled back to their
  source pixels and stacked in slice order, so a whole series yields one volume.
- ``segmentation-3d``: the series is prepared as one volume; when it is larger than the
  network input, sliding-window inference tiles it (Gaussian blending, concurrent batches).
  The label map is then put back onto the source grid through the two affines.

Models may output class probabilities (blended as they are) or argmax labels (blended as
one-hot votes). The output's post-processing spec (``ModelOutput.postprocessing``) turns class
scores into labels (threshold or argmax; argmax without one) and refines them on the grid it
declares: ``"model"`` before the labels go back to the source grid, ``"source"`` after; a 2D
model's slices are refined one by one in 2D. Every measurement then uses the source affine,
i.e. the real spacing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import numpy as np

from contract import SEGMENTATION_MEANINGS, ModelCard, ModelOutput, OutputMeaning, Task
from postprocessing import PostprocessingSpec, refine, to_labels
from postprocessing.labels import argmax_labels
from preprocessing import Instance, SeriesPlan, open_instance, plan_series, preprocess_instance, preprocess_series
from preprocessing.frames import Frame
from preprocessing.geometry import spacing_of
from preprocessing.pipeline import PreparedInput

from ..config import Settings
from ..drift import DriftObservation, input_features, merge
from ..errors import InferenceFailed, InferenceTimeout, OutputUnavailable
from ..inputs import count_inputs
from ..metrics import BATCHES_PER_REQUEST, PATCHES_PER_REQUEST
from ..outputs.measurements import ClassMeasurement, measure_labels
from postprocessing.regrid import labels_to_grid
from ..quality import check_input, check_slices
from ..sliding_window import sliding_window_inference
from ..uploads import DicomPart
from .batching import infer_in_batches
from .context import InferenceContext
from .registry import register

@dataclass(frozen=True)
class SegmentationResult:
    model_version: str
    labels: list[str]
    labels_map: np.ndarray  # [D, H, W] on the source grid, uint8
    affine_lps: np.ndarray  # source grid (d, h, w, 1) → LPS mm
    frames: tuple[Frame, ...]  # source frames in slice (d) order: an instance, or a frame of a multi-frame one
    measurements: list[ClassMeasurement]
    applied: dict[str, Any]
    patches: int
    batches: int
    drift: list[DriftObservation]

    @property
    def instances(self) -> list[Instance]:
        """The instance of each slice (a multi-frame instance repeats, once per frame)."""
        return [frame.instance for frame in self.frames]


@dataclass(frozen=True)
class SlidingWindowOptions:
    batch_size: int  # patches per Triton call
    overlap: float  # fraction of the ROI that neighbouring patches share, per axis
    concurrency: int  # batches in flight (and in memory) at once

    @classmethod
    def from_settings(cls, settings: Settings) -> SlidingWindowOptions:
        return cls(settings.sliding_window_batch_size, settings.sliding_window_overlap, settings.sliding_window_concurrency)


def segmentation_output(card: ModelCard) -> ModelOutput:
    output = next((o for o in card.outputs if o.meaning in SEGMENTATION_MEANINGS), None)
    if output is None:
        raise OutputUnavailable(f"model {card.name!r} has no segmentation output")
    if len(output.labels) < 2:
        raise InferenceFailed(f"model {card.name!r} declares no class labels for its segmentation output")
    return output


__all__ = ["SegmentationResult", "argmax_labels", "segmentation_output"]  # argmax_labels: postprocessing's, kept here for its users


class _ScoreClient:
    """Runs batches through Triton: the model's own output (:meth:`raw`), class scores
    [n, C, *spatial] as float32 for blending (``__call__``), or labels (:meth:`labels`)."""

    def __init__(self, context: InferenceContext) -> None:
        self.context = context
        self.output = segmentation_output(context.card)
        self.version = ""
        self.calls = 0

    async def raw(self, batch: np.ndarray) -> np.ndarray:
        answer = await infer_in_batches(self.context, {self.context.card.inputs[0].name: batch}, [self.output.name])
        self.calls += answer.calls
        self.version = answer.model_version
        return answer.outputs[self.output.name]

    def _spatial(self, result: np.ndarray, batch: np.ndarray) -> np.ndarray:
        """A labels output as [n, *spatial] (models may keep a channel axis of 1)."""
        return result.reshape(len(batch), *result.shape[-(batch.ndim - 2):])

    async def __call__(self, batch: np.ndarray) -> np.ndarray:
        result = await self.raw(batch)
        if self.output.meaning == OutputMeaning.SEGMENTATION_LABELS:  # one-hot votes, to blend overlapping patches
            classes = len(self.output.labels)
            labels = self._spatial(result, batch).astype(np.int64)
            return (np.arange(classes).reshape(1, classes, *([1] * (labels.ndim - 1))) == labels[:, None]).astype(np.float32)
        return result.astype(np.float32)

    async def labels(self, batch: np.ndarray) -> np.ndarray:
        """[n, *spatial] uint8 labels of a batch that needs no blending (class scores through
        the output's threshold / argmax steps)."""
        result = await self.raw(batch)
        if self.output.meaning == OutputMeaning.SEGMENTATION_LABELS:
            return self._spatial(result, batch).astype(np.uint8)
        return np.stack([to_labels(item.astype(np.float32, copy=False), self.output.postprocessing) for item in result])


@asynccontextmanager
async def inference_deadline(card: ModelCard, seconds: float) -> AsyncIterator[None]:
    """All Triton calls of one request within ``seconds`` (``MEDSERVE_TRITON_TIMEOUT_S``): a
    sliding window sends many batches, each with that deadline of its own, so without this a
    large volume could hold the request for several times it. Calls still in flight are
    cancelled (their shared-memory regions retired off the request path)."""
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError:
        raise InferenceTimeout(f"Triton did not finish model {card.name!r}'s patches within {seconds:g} s") from None


def _plan(parts: list[DicomPart]) -> SeriesPlan:
    """Headers only, sorted into one series; uncompressed frames stay zero-copy views on the
    upload until they are resampled."""
    return plan_series([open_instance(part.data) for part in parts])


def _refine_on(grid: str, labels: np.ndarray, spec: PostprocessingSpec | None, spacing_mm: tuple[float, ...]) -> np.ndarray:
    """``refine`` when ``spec`` declares ``grid`` for its label-map steps; ``labels`` as they are otherwise."""
    return refine(labels, spec, spacing_mm) if spec is not None and spec.grid == grid else labels


def _applied(applied: dict[str, Any], spec: PostprocessingSpec | None) -> dict[str, Any]:
    """The preprocessing record, and the post-processing spec when the output has one."""
    return applied if spec is None else {**applied, "postprocessing": spec.to_dict()}


def _prepared_slice_spacing(
    applied: dict[str, Any], source_mm: tuple[float, float], source_shape: tuple[int, int], model_shape: tuple[int, ...]
) -> tuple[float, float]:
    """mm between the rows and the columns of a prepared slice: a resize keeps the field of view
    (source pixels × source spacing / model pixels, as :func:`_resize_back` maps them back);
    otherwise the spacing it was resampled to, or the source's."""
    if "resized_to" in applied:
        return (source_mm[0] * source_shape[0] / model_shape[0], source_mm[1] * source_shape[1] / model_shape[1])
    if "resampled_to_spacing_mm" in applied:
        row, column = applied["resampled_to_spacing_mm"][-2:]
        return (float(row), float(column))
    return source_mm


def _resize_back(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Undo the prepared slice's resize (grid mode: pixel centres map as
    (i + 0.5) · scale − 0.5) with nearest-neighbour sampling."""
    rows, cols = labels.shape
    model_to_source = np.eye(4)
    for axis, (model, source) in enumerate(((rows, shape[0]), (cols, shape[1])), start=1):
        scale = source / model
        model_to_source[axis, axis] = scale
        model_to_source[axis, 3] = (scale - 1) / 2
    return labels_to_grid(labels[None], model_to_source, np.eye(4), (1, *shape))[0]


@dataclass(frozen=True)
class _SourceLabels:
    """What a dimension's inference leaves for the common postprocessing."""

    labels_map: np.ndarray  # [D, H, W] uint8 on the source grid
    applied: dict[str, Any]
    patches: int  # network inputs sent to Triton
    drift: Callable[[list[ClassMeasurement]], list[DriftObservation]]  # from the measurements
    postprocess_started: float  # perf_counter() when putting labels back on the source grid began


#: Preprocess, infer and put the labels back on the source grid (one per dimension).
_LabelSeries = Callable[[InferenceContext, SeriesPlan, _ScoreClient], Awaitable[_SourceLabels]]


async def _labels_2d(context: InferenceContext, plan: SeriesPlan, scores: _ScoreClient) -> _SourceLabels:
    """Every slice on its own, resized back to its source pixels."""
    card, clock = context.card, context.clock
    instances = [frame.instance for frame in plan.frames]
    started = time.perf_counter()
    prepared = await anyio.to_thread.run_sync(lambda: [preprocess_instance(i, card.preprocessing) for i in instances])
    clock.record("preprocess", started)
    check_slices(card, [p.applied for p in prepared], [i.header for i in instances], audit=context.audit)
    started = time.perf_counter()
    async with inference_deadline(card, context.triton.timeout_s):
        model_labels = await scores.labels(np.stack([p.array for p in prepared]))
    clock.record("infer", started)
    started = time.perf_counter()
    spec = scores.output.postprocessing
    source_mm = spacing_of(plan.affine_lps)[1:]  # (row, column) of every slice of the series

    def to_source(slice_labels: np.ndarray, p: PreparedInput, i: Instance) -> np.ndarray:
        shape = (i.pixels.rows, i.pixels.columns)
        slice_labels = _refine_on("model", slice_labels, spec, _prepared_slice_spacing(p.applied, source_mm, shape, slice_labels.shape))
        return _refine_on("source", _resize_back(slice_labels, shape), spec, source_mm)

    def stack() -> np.ndarray:
        return np.stack([to_source(m, p, i) for m, p, i in zip(model_labels, prepared, instances)])

    labels_map = await anyio.to_thread.run_sync(stack) if spec is not None else stack()
    pixel_mm2 = float(np.linalg.norm(np.cross(plan.affine_lps[:3, 1], plan.affine_lps[:3, 2])))  # row step × column step
    drift = [
        merge(
            input_features(card.inputs[0].name, p.array, i.header),
            DriftObservation({f"prediction.{label}": float((slice_labels == value).sum()) * pixel_mm2
                              for value, label in enumerate(scores.output.labels) if value > 0}, {}),
        )
        for p, i, slice_labels in zip(prepared, instances, labels_map)
    ]
    return _SourceLabels(labels_map, _applied(prepared[0].applied, spec), len(prepared), lambda _: drift, started)


async def _labels_3d(context: InferenceContext, plan: SeriesPlan, scores: _ScoreClient) -> _SourceLabels:
    """The series as one volume: one network input, or a sliding window over it."""
    card, clock = context.card, context.clock
    window = SlidingWindowOptions.from_settings(context.settings)
    started = time.perf_counter()
    prepared = await anyio.to_thread.run_sync(preprocess_series, plan, card.preprocessing)
    clock.record("preprocess", started)
    check_input(card, prepared.applied, audit=context.audit)
    started = time.perf_counter()
    roi = tuple(card.inputs[0].shape[2:])
    volume = prepared.array
    async with inference_deadline(card, context.triton.timeout_s):
        if tuple(volume.shape[1:]) == roi:  # one network input: nothing to blend
            model_labels = (await scores.labels(volume[None]))[0]
            patches = 1
        else:
            class_scores, stats = await sliding_window_inference(
                volume, roi, scores, batch_size=window.batch_size, overlap=window.overlap, concurrency=window.concurrency
            )
            model_labels = to_labels(class_scores, scores.output.postprocessing)
            patches = stats.patches
    clock.record("infer", started)
    started = time.perf_counter()
    assert prepared.geometry is not None and prepared.source_geometry is not None
    spec, model_affine = scores.output.postprocessing, prepared.geometry.affine_lps

    def to_source() -> np.ndarray:
        on_model = _refine_on("model", model_labels, spec, spacing_of(model_affine))
        return _refine_on("source", labels_to_grid(on_model, model_affine, plan.affine_lps, plan.shape), spec, spacing_of(plan.affine_lps))

    labels_map = await anyio.to_thread.run_sync(to_source)  # a whole CT's grid: off the event loop
    return _SourceLabels(labels_map, _applied(prepared.applied, spec), patches, volume_drift(card, prepared.array, plan), started)


def volume_drift(card: ModelCard, model_input: np.ndarray, plan: SeriesPlan) -> Callable[[list[ClassMeasurement]], list[DriftObservation]]:
    """A volume's one drift observation: the model input's features with the series' middle
    header and frame count, and each class's volume (mL) from the measurements."""
    middle = plan.frames[len(plan.frames) // 2].instance.header

    def drift(measurements: list[ClassMeasurement]) -> list[DriftObservation]:
        return [
            merge(
                input_features(card.inputs[0].name, model_input, middle, slices=len(plan.frames)),
                DriftObservation({f"prediction.{m.label}": m.volume_ml for m in measurements}, {}),
            )
        ]

    return drift


async def _segment(context: InferenceContext, label_series: _LabelSeries) -> SegmentationResult:
    """Segment the series sent. ``context.check_sources`` sees the planned series before the
    model runs: what the requested output needs of the sources is refused there, not after
    the inference."""
    card, clock = context.card, context.clock
    if len(card.inputs) != 1:
        raise InferenceFailed(f"model {card.name!r} takes {len(card.inputs)} inputs; send one series per input")
    scores = _ScoreClient(context)

    started = time.perf_counter()
    plan = await anyio.to_thread.run_sync(_plan, list(context.parts))
    clock.record("decode", started)
    count_inputs(card, [frame.instance.header for frame in plan.frames], context.audit)
    if context.check_sources is not None:
        context.check_sources(plan)

    found = await label_series(context, plan, scores)
    measurements = await anyio.to_thread.run_sync(measure_labels, found.labels_map, plan.affine_lps, scores.output.labels)
    drift = found.drift(measurements)
    clock.record("postprocess", found.postprocess_started)
    PATCHES_PER_REQUEST.labels(card.name).observe(found.patches)
    BATCHES_PER_REQUEST.labels(card.name).observe(scores.calls)
    context.audit.model_version = scores.version
    return SegmentationResult(
        model_version=scores.version,
        labels=scores.output.labels,
        labels_map=found.labels_map,
        affine_lps=plan.affine_lps,
        frames=plan.frames,
        measurements=measurements,
        applied=found.applied,
        patches=found.patches,
        batches=scores.calls,
        drift=drift,
    )


@register(Task.SEGMENTATION_2D)
async def segment_slices(context: InferenceContext) -> SegmentationResult:
    return await _segment(context, _labels_2d)


@register(Task.SEGMENTATION_3D)
async def segment_volume(context: InferenceContext) -> SegmentationResult:
    """The series as one volume; a cascade's card (``cascade``) runs its stages instead."""
    if context.card.cascade is not None:
        from .cascade import cascade_labels  # imported by the package at start; it builds on this module

        return await _segment(context, cascade_labels)
    return await _segment(context, _labels_3d)
