"""Put a label map computed on the model's voxel grid back onto the source series' grid.

Both grids are described by affines mapping (d, h, w, 1) to LPS mm, so one nearest-neighbour
affine resampling undoes any crop, pad, resample or reorientation preprocessing applied.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def labels_to_grid(labels_map: np.ndarray, labels_affine: np.ndarray, target_affine: np.ndarray, target_shape: tuple[int, ...]) -> np.ndarray:
    """Resample an integer [D, H, W] label map onto ``target_shape`` (nearest neighbour);
    voxels of the target outside the model's field of view become background (0)."""
    if np.allclose(labels_affine, target_affine) and labels_map.shape == tuple(target_shape):
        return labels_map
    target_to_model = np.linalg.inv(labels_affine) @ target_affine
    return ndimage.affine_transform(
        labels_map,
        target_to_model[:3, :3],
        offset=target_to_model[:3, 3],
        output_shape=tuple(target_shape),
        order=0,
        mode="constant",
        cval=0,
    ).astype(labels_map.dtype)
