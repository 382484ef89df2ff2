"""``format=json`` (the default): labels and probabilities of a classification; for a
segmentation, per-class measurements in physical units and the grid of the answer."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from preprocessing.attributes import header_text
from preprocessing.frames import Frame

from ..quality import answer_warnings
from ..schemas import (
    AnswerWarning,
    ClassificationPublic,
    GridPublic,
    SliceFramePublic,
    InstanceClassificationPublic,
    LabelProbability,
    MeasurementPublic,
    SegmentationPublic,
    StageTimings,
)
from .encoder import Answer, output_format


def _labelled(pairs: list[tuple[str, float]]) -> list[LabelProbability]:
    return [LabelProbability(label=label, probability=p) for label, p in pairs]


def classification_body(answer: Answer) -> ClassificationPublic:
    """One instance: its ranked labels at the top level; several: one entry per instance."""
    card, result = answer.card, answer.result
    single = result.instances[0] if len(result.instances) == 1 else None
    return ClassificationPublic(
        model=card.name,
        model_version=result.model_version,
        task=card.task,
        top_label=single.probabilities[0][0] if single else None,
        probabilities=_labelled(single.probabilities) if single else None,
        instances=None
        if single
        else [
            InstanceClassificationPublic(sop_instance_uid=i.sop_instance_uid, top_label=i.probabilities[0][0], probabilities=_labelled(i.probabilities))
            for i in result.instances
        ],
        preprocessing=result.instances[0].applied,
        warnings=[AnswerWarning(**w) for w in answer_warnings(i.applied for i in result.instances)],
        timings_ms=StageTimings(**answer.timings_ms),
        request_id=answer.request_id,
    )


def slice_sources(frames: Sequence[Frame]) -> tuple[list[str], list[SliceFramePublic] | None]:
    """The distinct instances of the slices ``frames`` (slice order) by SOP Instance UID, in the
    order of their first slice, and, when one of them is multi-frame, each slice's instance index
    and 1-based frame number (a single-frame series needs none: its slices are its instances)."""
    uids: list[str] = []
    index: dict[int, int] = {}
    for frame in frames:
        if id(frame.instance) not in index:
            index[id(frame.instance)] = len(uids)
            uids.append(header_text(frame.instance.header, "SOPInstanceUID"))
    if all(frame.instance.pixels.number_of_frames == 1 for frame in frames):
        return uids, None
    return uids, [SliceFramePublic(instance=index[id(f.instance)], frame=f.index + 1) for f in frames]


def segmentation_body(answer: Answer, masks: dict[str, dict[str, Any]] | None = None) -> SegmentationPublic:
    """Measurements and the grid (shape, spacing in mm, LPS affine, instance per slice);
    ``masks``: per class label, what ``format=rle`` adds."""
    card, result = answer.card, answer.result
    spacing = np.linalg.norm(result.affine_lps[:3, :3], axis=0)
    uids, frames = slice_sources(result.frames)
    return SegmentationPublic(
        model=card.name,
        model_version=result.model_version,
        task=card.task,
        labels=result.labels,
        measurements=[MeasurementPublic(**vars(m)) for m in result.measurements],
        grid=GridPublic(
            shape=list(result.labels_map.shape),
            spacing_mm=[round(float(v), 6) for v in spacing],
            affine_lps=np.round(result.affine_lps, 6).tolist(),
            sop_instance_uids=uids,
            frames=frames,
        ),
        masks=masks,
        patches=result.patches,
        batches=result.batches,
        preprocessing=result.applied,
        warnings=[AnswerWarning(**w) for w in answer_warnings([result.applied])],
        timings_ms=StageTimings(**answer.timings_ms),
        request_id=answer.request_id,
    )


@output_format("json", "application/json")
def encoder(answer: Answer) -> ClassificationPublic | SegmentationPublic:
    """labels and probabilities; for masks: per-class volume (mL), components and largest diameter (mm), and the grid"""
    return segmentation_body(answer) if answer.segmented else classification_body(answer)
