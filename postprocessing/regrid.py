"""Put a label map computed on the model's voxel grid back onto the source series' grid.

Both grids are described by affines mapping (d, h, w, 1) to LPS mm, so one nearest-neighbour
affine resampling undoes any crop, pad, resample or reorientation preprocessing applied.

When the model grid is the source grid scaled, shifted, flipped or with its axes permuted (what
resampling and reorientation produce: every row of the target-to-model matrix has one non-zero
entry) the resampling is separable: each target axis reads one model axis through a 1-D table of
nearest indices, and the whole map is one gather — an order of magnitude faster than
``scipy.ndimage.affine_transform`` on a whole CT (300×512×512: 2.0 s → a few hundred ms) and
equal to it voxel for voxel (the same rounding, ``floor(c + 0.5)``, and the same field of view,
``0 <= c <= n - 1``). Oblique relations fall back to ``affine_transform``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

#: An entry of the target-to-model matrix this small relative to the row's largest is zero
#: (float round-off of composing affines), so that an axis-aligned relation takes the fast path.
_AXIS_ALIGNED_TOLERANCE = 1e-9


def labels_to_grid(labels_map: np.ndarray, labels_affine: np.ndarray, target_affine: np.ndarray, target_shape: tuple[int, ...]) -> np.ndarray:
    """Resample an integer [D, H, W] label map onto ``target_shape`` (nearest neighbour);
    voxels of the target outside the model's field of view become background (0)."""
    if np.allclose(labels_affine, target_affine) and labels_map.shape == tuple(target_shape):
        return labels_map
    target_to_model = np.linalg.inv(labels_affine) @ target_affine
    axes = _axis_permutation(target_to_model[:3, :3])
    if axes is not None:
        return _gather(labels_map, target_to_model, axes, tuple(target_shape))
    return ndimage.affine_transform(
        labels_map,
        target_to_model[:3, :3],
        offset=target_to_model[:3, 3],
        output_shape=tuple(target_shape),
        order=0,
        mode="constant",
        cval=0,
    ).astype(labels_map.dtype)


def _axis_permutation(matrix: np.ndarray) -> tuple[int, int, int] | None:
    """For each model axis the one target axis it reads, when ``matrix`` (target index → model
    index) is a scaled signed permutation; None for an oblique relation."""
    magnitude = np.abs(matrix)
    significant = magnitude > _AXIS_ALIGNED_TOLERANCE * magnitude.max(axis=1, keepdims=True)
    if not (significant.sum(axis=1) == 1).all():
        return None
    axes = tuple(int(np.flatnonzero(row)[0]) for row in significant)
    return axes if len(set(axes)) == 3 else None  # type: ignore[return-value]


def _gather(labels_map: np.ndarray, target_to_model: np.ndarray, axes: tuple[int, int, int], target_shape: tuple[int, ...]) -> np.ndarray:
    """The separable nearest-neighbour resampling: model axis ``a`` at target index ``i`` of axis
    ``axes[a]`` is ``floor(m[a, axes[a]] * i + offset[a] + 0.5)``, background outside ``[0, n-1]``."""
    indices, outside = [], []
    for a, target_axis in enumerate(axes):
        coordinate = target_to_model[a, target_axis] * np.arange(target_shape[target_axis], dtype=np.float64) + target_to_model[a, 3]
        nearest = np.floor(coordinate + 0.5).astype(np.intp)
        outside.append(~((coordinate >= 0) & (coordinate <= labels_map.shape[a] - 1)))
        indices.append(np.clip(nearest, 0, labels_map.shape[a] - 1))
    gathered = labels_map[np.ix_(*indices)]  # axes in model order
    for a in range(3):
        if outside[a].any():
            gathered[(slice(None),) * a + (outside[a],)] = 0
    order = np.argsort(axes)  # the model axis that reads each target axis
    return np.ascontiguousarray(gathered.transpose(order)) if tuple(order) != (0, 1, 2) else gathered
