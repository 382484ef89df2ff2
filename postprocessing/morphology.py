"""Dilation and erosion in mm, and :func:`refine`, which runs a spec's label-map steps in order.

The structuring element is the ellipsoid of radius ``mm`` on the grid's spacing: offsets o (in
voxels) with Σ (o_i · spacing_i)² ≤ mm². Dilation by it is "within Euclidean distance ``mm`` of
the label", erosion "no voxel that is not the label within ``mm``", so both are computed with
one exact Euclidean distance transform (``scipy.ndimage.distance_transform_edt`` with
``sampling=spacing``) on the label's bounding box plus a margin: time and memory grow with the
object, not the radius.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .components import fill_holes, keep_largest_component, remove_small_objects
from .spec import PostprocessingSpec, PostprocessingStep


def _box(mask: np.ndarray, margin: tuple[int, ...]) -> tuple[slice, ...] | None:
    """The bounding box of ``mask`` grown by ``margin`` voxels per axis (clamped to the array), or None when empty."""
    found = ndimage.find_objects(mask.view(np.uint8))
    if not found or found[0] is None:
        return None
    return tuple(slice(max(s.start - m, 0), min(s.stop + m, n)) for s, m, n in zip(found[0], margin, mask.shape))


def dilate(labels: np.ndarray, label: int, mm: float, spacing_mm: tuple[float, ...]) -> None:
    """Background voxels within Euclidean distance ``mm`` of ``label`` become ``label`` (in place;
    other labels are never overwritten)."""
    mask = labels == label
    box = _box(mask, tuple(int(mm // s) + 1 for s in spacing_mm))
    if box is None:
        return
    distance = ndimage.distance_transform_edt(~mask[box], sampling=spacing_mm)
    region = labels[box]
    region[(distance <= mm) & (region == 0)] = label


def erode(labels: np.ndarray, label: int, mm: float, spacing_mm: tuple[float, ...]) -> None:
    """Voxels of ``label`` with a voxel that is not ``label`` within Euclidean distance ``mm``
    become background (in place); outside the array counts as not ``label`` (scipy's
    ``binary_erosion`` with ``border_value=0``)."""
    mask = labels == label
    box = _box(mask, (0,) * mask.ndim)
    if box is None:
        return
    inside = mask[box]
    distance = ndimage.distance_transform_edt(np.pad(inside, 1), sampling=spacing_mm)[(slice(1, -1),) * inside.ndim]
    labels[box][inside & (distance <= mm)] = 0


def _labels_of(step: PostprocessingStep, labels: np.ndarray) -> list[int]:
    """The step's labels, or every foreground label present, ascending."""
    if step.labels is not None:
        return sorted(set(step.labels))
    return [int(v) for v in np.flatnonzero(np.bincount(labels.ravel(), minlength=256)[1:]) + 1]


def _run(step: PostprocessingStep, labels: np.ndarray, spacing_mm: tuple[float, ...]) -> None:
    for label in _labels_of(step, labels):
        if step.op == "largest_component":
            keep_largest_component(labels, label, step.connectivity or 3)
        elif step.op == "fill_holes":
            fill_holes(labels, label, step.connectivity or 1)
        elif step.op == "remove_small_objects":
            assert step.min_size_mm3 is not None
            remove_small_objects(labels, label, step.min_size_mm3, spacing_mm, step.connectivity or 1)
        elif step.op == "dilate":
            assert step.mm is not None
            dilate(labels, label, step.mm, spacing_mm)
        elif step.op == "erode":
            assert step.mm is not None
            erode(labels, label, step.mm, spacing_mm)
        else:
            raise ValueError(f"{step.op!r} is not a label-map step")


def refine(labels: np.ndarray, spec: PostprocessingSpec | None, spacing_mm: tuple[float, ...]) -> np.ndarray:
    """The spec's label-map steps, in order, on a uint8 label map (2D or 3D) whose voxels are
    ``spacing_mm`` apart per axis (mm). Returns a new array; ``labels`` itself when there is
    nothing to do (None or no label-map step)."""
    steps = spec.label_steps if spec is not None else ()
    if not steps:
        return labels
    if len(spacing_mm) != labels.ndim:
        raise ValueError(f"spacing_mm has {len(spacing_mm)} values for a {labels.ndim}D label map")
    spacing = tuple(float(s) for s in spacing_mm)
    out = np.array(labels, dtype=np.uint8, copy=True)
    for step in steps:
        _run(step, out, spacing)
    return out
