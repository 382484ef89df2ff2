"""``format=json`` (the default): labels and probabilities of a classification; for a
segmentation, per-class measurements in physical units and the grid of the answer."""

from __future__ import annotations

from typing import Any

import numpy as np

from preprocessing.attributes import header_text

from ..schemas import (
    ClassificationPublic,
    GridPublic,
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
        timings_ms=StageTimings(**answer.timings_ms),
        request_id=answer.request_id,
    )


def segmentation_body(answer: Answer, masks: dict[str, dict[str, Any]] | None = None) -> SegmentationPublic:
    """Measurements and the grid (shape, spacing in mm, LPS affine, instance per slice);
    ``masks``: per class label, what ``format=rle`` adds."""
    card, result = answer.card, answer.result
    spacing = np.linalg.norm(result.affine_lps[:3, :3], axis=0)
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
            sop_instance_uids=[header_text(i.header, "SOPInstanceUID") for i in result.instances],
        ),
        masks=masks,
        patches=result.patches,
        batches=result.batches,
        preprocessing=result.applied,
        timings_ms=StageTimings(**answer.timings_ms),
        request_id=answer.request_id,
    )


@output_format("json", "application/json")
def encoder(answer: Answer) -> ClassificationPublic | SegmentationPublic:
    """labels and probabilities; for masks: per-class volume (mL), components and largest diameter (mm), and the grid"""
    return segmentation_body(answer) if answer.segmented else classification_body(answer)
