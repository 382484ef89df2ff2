"""The steps of a two-stage cascade between its model calls, shared by the gateway (Triton) and
export (PyTorch and onnxruntime), so that what export verifies is what the gateway runs.

    load the series once (:func:`preprocessing.pipeline.load_series_volume`)
    → :func:`localiser_input` → localiser model → :func:`localiser_region`
    → :func:`stage_input` (the region of the loaded volume) → model → :func:`stage_labels`
    (on the loaded volume's grid; the caller puts it back on the source grid)

The loaded volume is the series reoriented and resampled as both stages' specs ask (they must
agree on ``orientation`` and ``spacing_mm``); each stage resizes from it to its own input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from preprocessing.normalize import clip_percentile_values
from preprocessing.pipeline import PreparedInput, SeriesVolume, finish_volume
from preprocessing.resample import nearest_indices
from preprocessing.spec import PreprocessingSpec

from .labels import to_labels
from .morphology import refine
from .region import Box, RegionSpec, region_box
from .regrid import labels_to_grid
from .spec import PostprocessingSpec


@dataclass(frozen=True)
class LocaliserResult:
    """What the localiser found: its post-processed labels on its own grid, the ``box`` on the
    loaded volume's grid (None: nothing found), and the clip percentiles it computed (for
    later stages' ``clip_percentiles`` steps taken ``of="localiser"``)."""

    labels: np.ndarray
    box: Box | None
    percentiles: tuple[float, float] | None


def check_stage_specs(localiser: PreprocessingSpec, stage: PreprocessingSpec) -> list[str]:
    """Why two preprocessing specs cannot be stages of one cascade (empty when they can)."""
    problems = []
    for key in ("orientation", "spacing_mm", "modalities", "layout"):
        if getattr(localiser, key) != getattr(stage, key):
            problems.append(f"the stages must agree on {key} (localiser {getattr(localiser, key)!r}, model {getattr(stage, key)!r})")
    for name, spec in (("localiser", localiser), ("model", stage)):
        if spec.layout != "CDHW":
            problems.append(f"the {name} must take a volume (layout CDHW)")
        if spec.crop_foreground is not None:
            problems.append(f"the {name} must not crop to the foreground: the region is the cascade's crop")
        if spec.output_size is not None and spec.size_mode != "resize":
            problems.append(f"the {name} must reach its input size by resize, not {spec.size_mode}")
    if localiser.uses_localiser_statistics:
        problems.append("the localiser's clip_percentiles cannot be taken of the localiser")
    return problems


def localiser_input(base: SeriesVolume, spec: PreprocessingSpec) -> PreparedInput:
    """The localiser's input: the whole loaded volume, prepared by its spec."""
    return finish_volume(base, spec)


def localiser_region(
    scores: np.ndarray,
    prepared: PreparedInput,
    postprocessing: PostprocessingSpec | None,
    region: RegionSpec,
    base: SeriesVolume,
) -> LocaliserResult:
    """The localiser's [C, d, h, w] class scores → its labels (its output's post-processing,
    on its own grid) → the region's box on the loaded volume's grid."""
    assert prepared.geometry is not None
    labels = refine(to_labels(scores, postprocessing), postprocessing, prepared.geometry.spacing_mm)
    spacing = np.linalg.norm(base.affine_lps[:3, :3], axis=0)
    box = region_box(labels, region, base.values.shape[:3], tuple(float(s) for s in spacing))
    percentiles = clip_percentile_values(prepared.applied.get("normalize_steps", []))
    return LocaliserResult(labels, box, percentiles)


def stage_input(base: SeriesVolume, spec: PreprocessingSpec, found: LocaliserResult) -> PreparedInput:
    """The later stage's input: the loaded volume cropped to the localiser's box, prepared by
    the stage's spec (its percentile clips taken of the localiser where it says so)."""
    assert found.box is not None
    prepared = finish_volume(base, spec, region=found.box, localiser_percentiles=found.percentiles)
    prepared.applied["region"] = [[part.start, part.stop] for part in found.box]
    return prepared


def stage_labels(
    scores: np.ndarray, prepared: PreparedInput, postprocessing: PostprocessingSpec | None, box: Box, base_shape: tuple[int, ...]
) -> np.ndarray:
    """The later stage's [C, d, h, w] class scores → uint8 labels on the loaded volume's grid:
    labels on the model's grid (refined there when its post-processing's grid is ``model``),
    resized back to the box with PyTorch's ``nearest-exact`` (as deepbet resizes its
    probabilities back; thresholding commutes with it), pasted into background."""
    assert prepared.geometry is not None
    labels = to_labels(scores, postprocessing)
    if postprocessing is not None and postprocessing.grid == "model":
        labels = refine(labels, postprocessing, prepared.geometry.spacing_mm)
    for axis, part in enumerate(box):
        size = part.stop - part.start
        if labels.shape[axis] != size:
            labels = np.take(labels, nearest_indices(labels.shape[axis], size, exact=True), axis=axis)
    out = np.zeros(base_shape, dtype=np.uint8)
    out[tuple(box)] = labels
    return out


def labels_on_source(
    on_base: np.ndarray, base: SeriesVolume, postprocessing: PostprocessingSpec | None
) -> np.ndarray:
    """Labels on the loaded volume's grid → the series as sent (nearest neighbour through the
    two affines), refined there when the post-processing's grid is ``source`` (on the box the
    steps can change, :func:`postprocessing.morphology.refine`)."""
    source = base.source
    labels = labels_to_grid(on_base, base.affine_lps, source.affine_lps, source.shape)
    if postprocessing is not None and postprocessing.grid == "source":
        labels = refine(labels, postprocessing, source.spacing_mm)
    return labels
