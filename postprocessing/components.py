"""Connected-component steps on a uint8 label map, one label at a time (scipy.ndimage).

``connectivity`` is the number of orthogonal hops to a neighbour (``ndimage.generate_binary_structure``):
1 = faces, 2 = faces and edges, ``ndim`` or more = every neighbour (26 in 3D, 8 in 2D).
Every function changes ``labels`` in place.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage


def structure(ndim: int, connectivity: int) -> np.ndarray:
    """The neighbourhood of ``connectivity`` hops; more hops than axes is the full neighbourhood."""
    return ndimage.generate_binary_structure(ndim, min(connectivity, ndim))


def _components(mask: np.ndarray, connectivity: int) -> tuple[np.ndarray, int]:
    """Component ids of ``mask`` (0 outside it, int32) and how many components there are."""
    ids, count = ndimage.label(mask, structure(mask.ndim, connectivity))
    return ids, int(count)


def _sizes(ids: np.ndarray) -> np.ndarray:
    """Each component id's voxel count (index 0, outside the mask, zeroed). ``np.bincount``
    widens the ids to 8 bytes a voxel, so it runs only where sizes decide something."""
    sizes = np.bincount(ids.ravel())
    sizes[0] = 0
    return sizes


def keep_largest_component(labels: np.ndarray, label: int, connectivity: int) -> None:
    """Only the largest connected component of ``label`` stays; the rest becomes background 0
    (MONAI ``KeepLargestConnectedComponent(independent=True)``; on a tie of sizes, the first
    component in C order)."""
    mask = labels == label
    ids, count = _components(mask, connectivity)
    if count <= 1:  # none or one component: no sizes to compare
        return
    labels[mask & (ids != int(np.argmax(_sizes(ids))))] = 0


def fill_holes(labels: np.ndarray, label: int, connectivity: int) -> None:
    """Every voxel that is not ``label`` and cannot reach the array border through voxels that
    are not ``label`` (``connectivity`` hops at a time) becomes ``label`` — MONAI ``FillHoles``,
    which floods from the border; here the non-label components touching a face are found at
    once, and when all of them touch one there is no hole and nothing more to do."""
    other = labels != label
    ids, count = _components(other, connectivity)
    reaches_border = np.zeros(count + 1, dtype=bool)
    for axis in range(ids.ndim):
        for end in (0, -1):
            reaches_border[np.take(ids, end, axis=axis)] = True
    reaches_border[0] = True  # id 0 is the label itself
    if reaches_border.all():
        return
    labels[~reaches_border[ids]] = label


def remove_small_objects(labels: np.ndarray, label: int, min_size_mm3: float, spacing_mm: tuple[float, ...], connectivity: int) -> None:
    """Components of ``label`` with fewer than ceil(``min_size_mm3`` / voxel volume) voxels become
    background — MONAI ``RemoveSmallObjects(min_size, by_measure=True, pixdim=spacing_mm)``,
    which computes the voxel count the same way (skimage removes objects smaller than it)."""
    voxel_mm3 = float(np.prod(np.array(spacing_mm, dtype=np.float64)))
    min_voxels = math.ceil(min_size_mm3 / voxel_mm3)
    mask = labels == label
    ids, _ = _components(mask, connectivity)
    sizes = _sizes(ids)
    small = sizes < min_voxels
    small[0] = False
    if small.any():
        labels[small[ids]] = 0
