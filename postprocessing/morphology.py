"""Dilation and erosion in mm, and :func:`refine`, which runs a spec's label-map steps in order.

The structuring element is the ellipsoid of radius ``mm`` on the grid's spacing: offsets o (in
voxels) with Σ (o_i · spacing_i)² ≤ mm². Dilation by it is "within Euclidean distance ``mm``
of the label", erosion "no voxel that is not the label within ``mm``". Both take the squared
distance to the nearest seed voxel, truncated at ``mm``, as one min-plus pass per axis
(d²(x) = min over offsets k_i of Σ (k_i · spacing_i)² + seed(x + k)), exact because the
ellipsoid's terms add up axis by axis: 2 · ⌊mm / spacing_i⌋ array operations per axis on the
label's bounding box plus the radius, float32. Two labels filling a quarter of a 256³ volume
dilate by 3 mm in 2.4 s (scipy's exact ``distance_transform_edt`` on the same boxes: 16.6 s);
memory is a few arrays the size of the box.
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


def _reach(mm: float, spacing_mm: tuple[float, ...]) -> tuple[int, ...]:
    """The ellipsoid's half-extent in voxels per axis."""
    return tuple(int(mm // s) for s in spacing_mm)


def within(seeds: np.ndarray, mm: float, spacing_mm: tuple[float, ...]) -> np.ndarray:
    """Voxels whose squared distance to the nearest ``seeds`` voxel is ≤ mm² (only seeds inside
    the array count)."""
    squared = np.where(seeds, np.float32(0), np.float32(np.inf))
    for axis, (reach, step) in enumerate(zip(_reach(mm, spacing_mm), spacing_mm)):
        source = squared.copy() if reach else squared
        for k in range(1, reach + 1):
            cost = np.float32((k * step) ** 2)
            ahead = [slice(None)] * squared.ndim
            behind = [slice(None)] * squared.ndim
            ahead[axis], behind[axis] = slice(k, None), slice(None, -k)
            np.minimum(squared[tuple(behind)], source[tuple(ahead)] + cost, out=squared[tuple(behind)])
            np.minimum(squared[tuple(ahead)], source[tuple(behind)] + cost, out=squared[tuple(ahead)])
    return squared <= np.float32(mm * mm)


def dilate(labels: np.ndarray, label: int, mm: float, spacing_mm: tuple[float, ...]) -> None:
    """Background voxels within Euclidean distance ``mm`` of ``label`` become ``label`` (in place;
    other labels are never overwritten)."""
    mask = labels == label
    box = _box(mask, _reach(mm, spacing_mm))
    if box is None:
        return
    region = labels[box]
    region[within(mask[box], mm, spacing_mm) & (region == 0)] = label


def erode(labels: np.ndarray, label: int, mm: float, spacing_mm: tuple[float, ...]) -> None:
    """Voxels of ``label`` with a voxel that is not ``label`` within Euclidean distance ``mm``
    become background (in place); outside the array counts as not ``label`` (scipy's
    ``binary_erosion`` with ``border_value=0``)."""
    mask = labels == label
    box = _box(mask, (0,) * mask.ndim)
    if box is None:
        return
    inside = mask[box]
    reach = tuple(r + 1 for r in _reach(mm, spacing_mm))  # everything around the box is not the label
    outside = np.pad(~inside, [(r, r) for r in reach], constant_values=True)
    near = within(outside, mm, spacing_mm)[tuple(slice(r, -r) for r in reach)]
    labels[box][inside & near] = 0


def _labels_of(step: PostprocessingStep, labels: np.ndarray) -> list[int]:
    """The step's labels, or every foreground label present, ascending (one pass, no widening
    of the uint8 map as ``np.bincount`` would do)."""
    if step.labels is not None:
        return sorted(set(step.labels))
    return [value for value, box in enumerate(ndimage.find_objects(labels), start=1) if box is not None]


def _label_box(labels: np.ndarray, label: int) -> tuple[slice, ...] | None:
    """The bounding box of ``label``; None when it is absent."""
    found = ndimage.find_objects(labels, max_label=label)
    return found[label - 1] if len(found) >= label else None


def _run(step: PostprocessingStep, labels: np.ndarray, spacing_mm: tuple[float, ...]) -> None:
    """One step on every label it names. The component steps run on the label's bounding box
    (a view, so the map changes in place), which gives the whole map's answer: the label's
    components all lie in it, and a voxel that is not the label reaches the box's faces exactly
    when it reaches the array's — a face voxel inside the array touches the outside of the box,
    where nothing is the label and every voxel reaches the array's faces (along an axis on which
    it lies outside the box). An absent label changes nothing."""
    for label in _labels_of(step, labels):
        if step.op in ("largest_component", "fill_holes", "remove_small_objects"):
            box = _label_box(labels, label)
            if box is None:
                continue
            region = labels[box]
            if step.op == "largest_component":
                keep_largest_component(region, label, step.connectivity or 3)
            elif step.op == "fill_holes":
                fill_holes(region, label, step.connectivity or 1)
            else:
                assert step.min_size_mm3 is not None
                remove_small_objects(region, label, step.min_size_mm3, spacing_mm, step.connectivity or 1)
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
    box = _reach_box(out, steps, spacing)
    if box is None:  # no label: no step changes anything
        return out
    region = out[box]  # a view: the steps change the map in place
    for step in steps:
        _run(step, region, spacing)
    return out


def _reach_box(labels: np.ndarray, steps: tuple[PostprocessingStep, ...], spacing_mm: tuple[float, ...]) -> tuple[slice, ...] | None:
    """The box the steps can change: the bounding box of every label grown per axis by the sum
    of the dilations' reaches (clamped to the array); None when there is no label. The steps see
    the same neighbourhoods in it as in the whole map (component steps keep to a label's box,
    a dilation to the label's box plus its reach, an erosion only clears and counts what lies
    outside as not the label, as the array's outside is), so running them on it gives the whole
    map's answer without passes over a volume the findings fill a fraction of."""
    found = [box for box in ndimage.find_objects(labels) if box is not None]
    if not found:
        return None
    grow = [0] * labels.ndim
    for step in steps:
        if step.op == "dilate":
            assert step.mm is not None
            grow = [g + r for g, r in zip(grow, _reach(step.mm, spacing_mm))]
    return tuple(
        slice(max(min(box[axis].start for box in found) - grow[axis], 0), min(max(box[axis].stop for box in found) + grow[axis], n))
        for axis, n in enumerate(labels.shape)
    )
