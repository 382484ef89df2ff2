"""The findings of a segmentation result: one per connected component of each foreground class,
measured in physical units, as a measurement report (DICOM SR) lists them.

Definitions, all on the source grid with the source affine (oblique and anisotropic grids are
measured as they lie in the patient):

- **component**: a 26-connected set of voxels of one label value (faces, edges and corners
  touch), the connectivity of ``scipy.ndimage.label`` with a full 3×3×3 structure. Components of
  one class are numbered 1, 2, … by voxel count, largest first, ties by their first voxel in
  C (d, h, w) order. At most :data:`MAX_COMPONENTS_PER_CLASS` per class are reported (the
  largest); tiny specks are findings too: what the model's own post-processing kept is reported.
- **volume_ml**: voxel count × |det(affine[:3, :3])| / 1000.
- **long_axis_mm** (RECIST-like): on the slice (one ``d`` index) where the component's in-plane
  maximum Feret diameter is largest (the first such slice on ties), that diameter, centre to
  centre of the two farthest pixels, in patient mm.
- **short_axis_mm**: on that slice, the component's extent perpendicular to the long axis in
  the slice plane (caliper width along that direction, centre to centre); 0 for a single pixel.
- **mean / maximum**: of the source's modality values (the Modality LUT applied: HU for CT)
  over the component's voxels; only the frames the component spans are decoded, each once for
  all findings. ``None`` for colour sources, which have no modality value.
- **unit**: what those values are in, a UCUM code: ``[hnsf'U]`` (Hounsfield unit) for CT,
  ``Bq/mL`` for PET whose (0054,1001) Units is BQML, otherwise ``1`` (no units: MR and other
  signal intensities are arbitrary numbers).
- **frames**: indices into ``result.frames`` (slice order) of the slices the component spans.
- **centroid_mm**: the mean voxel position in LPS patient mm.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError
from scipy.spatial.distance import pdist, squareform

from preprocessing import decode_frame
from preprocessing.attributes import header_text
from preprocessing.frames import Frame
from preprocessing.pixels import to_modality_values

__all__ = ["MAX_COMPONENTS_PER_CLASS", "Finding", "Unit", "find", "modality_unit"]

#: The most components reported per class (the largest): bounds the report and its cost on a
#: noisy model output; a class with more is still measured on its largest ones.
MAX_COMPONENTS_PER_CLASS = 100

_STRUCTURE_26 = np.ones((3, 3, 3), dtype=bool)


@dataclass(frozen=True)
class Unit:
    """A UCUM unit: ``code`` as UCUM writes it and its ``meaning`` in words."""

    code: str
    meaning: str


HOUNSFIELD = Unit("[hnsf'U]", "Hounsfield unit")
BECQUEREL_PER_ML = Unit("Bq/mL", "Becquerels/milliliter")
NO_UNITS = Unit("1", "no units")


@dataclass(frozen=True)
class Finding:
    """One connected component of one foreground class (see the module docstring)."""

    label_value: int
    label: str
    component: int  # 1-based, largest first within the class
    voxels: int
    volume_ml: float
    long_axis_mm: float
    short_axis_mm: float
    mean: float | None
    maximum: float | None
    unit: Unit
    frames: tuple[int, ...]
    centroid_mm: tuple[float, float, float]


def modality_unit(frames: Sequence[Frame]) -> Unit:
    """The unit of the sources' modality values (see the module docstring)."""
    header = frames[0].header
    modality = header_text(header, "Modality").upper()
    if modality == "CT":
        return HOUNSFIELD
    if modality == "PT" and header_text(frames[0].instance.header, "Units").upper() == "BQML":
        return BECQUEREL_PER_ML
    return NO_UNITS


def find(labels_map: np.ndarray, affine_lps: np.ndarray, labels: Sequence[str], frames: Sequence[Frame]) -> list[Finding]:
    """The findings of a [D, H, W] label map on the source grid (value k = ``labels[k]``,
    0 = background), ``affine_lps`` (4×4, (d, h, w, 1) → LPS mm) and the source ``frames`` in
    slice order: ordered by label value, then component number."""
    if labels_map.ndim != 3 or affine_lps.shape != (4, 4) or len(frames) != labels_map.shape[0]:
        raise ValueError(f"expected a [D, H, W] label map with one frame per slice and a 4x4 affine, got {labels_map.shape}, {len(frames)} frames")
    voxel_ml = abs(float(np.linalg.det(affine_lps[:3, :3]))) / 1000.0
    measured: list[tuple[int, str, int, np.ndarray, tuple[slice, ...]]] = []  # value, label, number, mask, box
    for value in range(1, len(labels)):
        for number, (mask, box) in enumerate(_components(labels_map == value), start=1):
            measured.append((value, labels[value], number, mask, box))
    intensities = _intensities([(mask, box) for *_, mask, box in measured], frames)
    findings = []
    for (value, label, number, mask, box), (mean, maximum) in zip(measured, intensities):
        index = np.argwhere(mask) + [s.start for s in box]
        centroid = affine_lps[:3, :3] @ index.mean(axis=0) + affine_lps[:3, 3]
        long_axis, short_axis = _axes_mm(mask, affine_lps)
        findings.append(
            Finding(
                label_value=value,
                label=label,
                component=number,
                voxels=len(index),
                volume_ml=len(index) * voxel_ml,
                long_axis_mm=long_axis,
                short_axis_mm=short_axis,
                mean=mean,
                maximum=maximum,
                unit=modality_unit(frames),
                frames=tuple(int(d) for d in np.unique(index[:, 0])),
                centroid_mm=(float(centroid[0]), float(centroid[1]), float(centroid[2])),
            )
        )
    return findings


def _components(mask: np.ndarray) -> list[tuple[np.ndarray, tuple[slice, ...]]]:
    """The 26-connected components of ``mask``, largest first (ties: first voxel in C order),
    at most :data:`MAX_COMPONENTS_PER_CLASS`: each as its own mask within its bounding box."""
    if not mask.any():
        return []
    box = ndimage.find_objects(mask.astype(np.uint8))[0]  # label only where the class is
    components, count = ndimage.label(mask[box], structure=_STRUCTURE_26)
    sizes = np.bincount(components.ravel(), minlength=count + 1)[1:]
    # ndimage.label numbers components in the order of their first voxel (C order)
    order = sorted(range(count), key=lambda c: (-int(sizes[c]), c))[:MAX_COMPONENTS_PER_CLASS]
    objects = ndimage.find_objects(components)
    found = []
    for c in order:
        inner = objects[c]
        outer = tuple(slice(b.start + i.start, b.start + i.stop) for b, i in zip(box, inner))
        found.append((components[inner] == c + 1, outer))
    return found


def _axes_mm(mask: np.ndarray, affine: np.ndarray) -> tuple[float, float]:
    """(long axis, short axis) in mm of a component's box ``mask`` (see the module docstring)."""
    in_plane = affine[:3, 1:3]  # mm per row, per column
    basis, _ = np.linalg.qr(in_plane)  # an orthonormal basis of the slice plane
    best = (-1.0, 0.0)
    for d in range(mask.shape[0]):
        pixels = np.argwhere(mask[d]).astype(np.float64)
        if not len(pixels):
            continue
        points = (pixels @ in_plane.T) @ basis  # in-plane mm coordinates, 2D
        long_axis, direction = _feret(points)
        if long_axis > best[0]:
            projected = points @ np.array([-direction[1], direction[0]])  # across the long axis
            best = (long_axis, float(projected.max() - projected.min()) if long_axis > 0 else 0.0)
    return best


def _feret(points: np.ndarray) -> tuple[float, np.ndarray]:
    """The maximum Feret diameter of 2D ``points`` (mm, centre to centre) and its unit direction."""
    if len(points) > 2:
        try:
            points = points[ConvexHull(points).vertices]
        except QhullError:  # collinear: every pair is still a candidate
            pass
    if len(points) < 2:
        return 0.0, np.array([1.0, 0.0])
    distances = squareform(pdist(points))
    i, j = np.unravel_index(int(np.argmax(distances)), distances.shape)
    length = float(distances[i, j])
    return length, (points[j] - points[i]) / length


def _intensities(components: list[tuple[np.ndarray, tuple[slice, ...]]], frames: Sequence[Frame]) -> list[tuple[float | None, float | None]]:
    """(mean, max) of the modality values under each component, decoding each spanned frame once."""
    if not components:
        return []
    if frames[0].instance.pixels.samples_per_pixel != 1:
        return [(None, None)] * len(components)
    sums = np.zeros(len(components))
    counts = np.zeros(len(components), dtype=np.int64)
    maxima = np.full(len(components), -np.inf)
    spanned = sorted({d for _, box in components for d in range(box[0].start, box[0].stop)})
    for d in spanned:
        frame = frames[d]
        values = to_modality_values(frame.header, decode_frame(frame.instance, frame.index))
        for k, (mask, box) in enumerate(components):
            if not box[0].start <= d < box[0].stop:
                continue
            under = values[box[1], box[2]][mask[d - box[0].start]]
            if under.size:
                sums[k] += float(under.sum(dtype=np.float64))
                counts[k] += under.size
                maxima[k] = max(maxima[k], float(under.max()))
    return [(float(s / n), float(m)) for s, n, m in zip(sums, counts, maxima)]
