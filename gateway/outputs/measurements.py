"""Physical measurements of segmentation masks: volumes in mL and largest diameters in mm.

All distances use the real voxel spacing (and the full affine, so oblique acquisitions are
measured correctly), never pixel counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError
from scipy.spatial.distance import pdist


@dataclass(frozen=True)
class ClassMeasurement:
    label: str
    voxels: int
    volume_ml: float
    components: int
    largest_diameter_mm: float


def _voxel_volume_ml(affine: np.ndarray) -> float:
    return abs(float(np.linalg.det(affine[:3, :3]))) / 1000.0


def largest_diameter_mm(mask: np.ndarray, affine: np.ndarray) -> float:
    """Largest distance between two voxels of ``mask`` (its maximum Feret diameter), in mm,
    measured centre to centre over the convex hull of the boundary voxels' patient positions."""
    if not mask.any():
        return 0.0
    boundary = mask & ~ndimage.binary_erosion(mask)
    index = np.argwhere(boundary).astype(np.float64)
    points = index @ affine[:3, :3].T
    if len(points) > 3:
        try:
            points = points[ConvexHull(points).vertices]
        except QhullError:  # flat (single slice or line): pairwise distances are still right
            pass
    if len(points) > 4000:
        points = points[np.linspace(0, len(points) - 1, 4000).astype(int)]
    return float(pdist(points).max()) if len(points) > 1 else 0.0


def _bounding_box(mask: np.ndarray) -> tuple[slice, ...] | None:
    """The smallest box holding every True voxel of ``mask``; None when there is none."""
    box = []
    for axis in range(mask.ndim):
        hits = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        if hits.size == 0:
            return None
        box.append(slice(int(hits[0]), int(hits[-1]) + 1))
    return tuple(box)


def measure_labels(labels_map: np.ndarray, affine: np.ndarray, labels: list[str]) -> list[ClassMeasurement]:
    """One measurement per foreground class of a [D, H, W] integer label map (0 = background).

    ``affine`` (4×4) maps array indices to patient millimetres; a single 2D slice is passed as
    D = 1 with the slice thickness on the first axis.
    """
    if labels_map.ndim != 3 or affine.shape != (4, 4):
        raise ValueError(f"expected a [D, H, W] label map and a 4x4 affine, got {labels_map.shape} and {affine.shape}")
    voxel_ml = _voxel_volume_ml(affine)
    results = []
    for value, label in enumerate(labels):
        if value == 0:
            continue
        mask = labels_map == value
        voxels = int(np.count_nonzero(mask))
        box = _bounding_box(mask)  # lesions are small: label connected components only there
        count, diameter = 0, 0.0
        if box is not None:
            components, count = ndimage.label(mask[box])
            # Each component within its own box: diameters do not depend on where a box lies,
            # and a box's edge is background as the volume's edge is for the erosion.
            diameter = max(
                largest_diameter_mm(components[inner] == c, affine)
                for c, inner in enumerate(ndimage.find_objects(components), start=1)
                if inner is not None
            )
        results.append(ClassMeasurement(label, voxels, round(voxels * voxel_ml, 4), int(count), round(diameter, 2)))
    return results
