"""Prediction results → HTTP answers in the format the client asked for."""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from fastapi import Response
from pydantic import BaseModel
from pydicom.dataset import Dataset

from preprocessing import Instance, decode_frame
from preprocessing.attributes import header_text
from preprocessing.pixels import apply_window, resolve_window, to_modality_values

from .catalog import ModelCard
from .errors import OutputUnavailable
from .formats import MEDIA_TYPES, OutputFormat
from .outputs import rle
from .outputs.nifti import nifti_labels
from .outputs.overlay import heatmap_overlay_png, mask_overlay_png
from .outputs.seg import segmentation
from .predict import ClassificationResult
from .schemas import (
    ClassificationPublic,
    GridPublic,
    InstanceClassificationPublic,
    LabelProbability,
    MeasurementPublic,
    SegmentationPublic,
    StageTimings,
)
from .segmentation import SegmentationResult


def _labelled(pairs: list[tuple[str, float]]) -> list[LabelProbability]:
    return [LabelProbability(label=label, probability=p) for label, p in pairs]


def classification_response(card: ModelCard, result: ClassificationResult, request_id: str) -> ClassificationPublic:
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
        timings_ms=StageTimings(**result.timings_ms),
        request_id=request_id,
    )


def segmentation_json(card: ModelCard, result: SegmentationResult, timings: dict[str, float], request_id: str, with_masks: bool) -> SegmentationPublic:
    spacing = np.linalg.norm(result.affine_lps[:3, :3], axis=0)
    masks = (
        {label: rle.encode(result.labels_map == value) for value, label in enumerate(result.labels) if value > 0}
        if with_masks
        else None
    )
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
        timings_ms=StageTimings(**timings),
        request_id=request_id,
    )


def _windowed_slice(card: ModelCard, instance: Instance, frame_index: int = 0, header: Dataset | None = None) -> np.ndarray:
    """Frame ``frame_index`` of the source in [0, 1] (``header``: that frame's flattened
    header, for a multi-frame instance): the model's window when it has one, else the
    1st–99th percentile range, so that a person sees what the model saw."""
    if instance.pixels.samples_per_pixel != 1:
        raise OutputUnavailable("an overlay is drawn on a grayscale image; this source is colour: ask for format=json or nifti")
    ds = header if header is not None else instance.header
    values = to_modality_values(ds, decode_frame(instance, frame_index))
    if card.preprocessing.window is not None:
        center, width = resolve_window(card.preprocessing.window, ds)
        return apply_window(values, center, width)
    low, high = np.percentile(values, [1, 99])
    return np.clip((values - low) / max(high - low, 1e-6), 0, 1)


def overlay_slice_index(result: SegmentationResult, requested: int | None) -> int:
    """The requested slice, or the one with the most foreground (the middle one if empty)."""
    if requested is not None:
        return requested
    areas = (result.labels_map > 0).reshape(len(result.labels_map), -1).sum(axis=1)
    return int(np.argmax(areas)) if areas.any() else len(areas) // 2


def segmentation_response(
    card: ModelCard,
    result: SegmentationResult,
    output_format: OutputFormat,
    timings: dict[str, float],
    request_id: str,
    slice_index: int | None = None,
) -> BaseModel | Response:
    if output_format in (OutputFormat.JSON, OutputFormat.RLE):
        return segmentation_json(card, result, timings, request_id, with_masks=output_format == OutputFormat.RLE)
    headers = {"X-Model-Version": result.model_version}
    if output_format == OutputFormat.PNG:
        index = overlay_slice_index(result, slice_index)
        frame = result.frames[index]
        content = mask_overlay_png(_windowed_slice(card, frame.instance, frame.index, frame.header), result.labels_map[index])
        headers["X-Slice-Index"] = str(index)
    elif output_format == OutputFormat.NIFTI:
        content = nifti_labels(result.labels_map, result.affine_lps)
        headers["Content-Disposition"] = f'attachment; filename="{card.name}.nii.gz"'
    else:
        content = segmentation(result.frames, result.labels_map, result.labels, card.name, result.model_version)
        headers["Content-Disposition"] = f'attachment; filename="{card.name}-seg.dcm"'
    return Response(content=content, media_type=MEDIA_TYPES[output_format], headers=headers)


def heatmap_response(card: ModelCard, result: ClassificationResult, instance_index: int | None) -> Response:
    """The activation map of one instance (the first by default), upsampled over its source
    pixels: the model's grid is a uniform resize of the source, so one linear zoom maps it."""
    index = instance_index or 0
    instance = result.instances[index]
    if instance.source is None or instance.activation_map is None:
        raise OutputUnavailable(f"model {card.name!r} answered no activation map")
    image = _windowed_slice(card, instance.source)
    activation = np.asarray(instance.activation_map, dtype=np.float32).reshape(instance.activation_map.shape[-2:])
    factors = (image.shape[0] / activation.shape[0], image.shape[1] / activation.shape[1])
    heat = ndimage.zoom(activation, factors, order=1, mode="nearest", grid_mode=True)[: image.shape[0], : image.shape[1]]
    headers = {"X-Model-Version": result.model_version, "X-Instance-Index": str(index)}
    return Response(content=heatmap_overlay_png(image, heat), media_type="image/png", headers=headers)
