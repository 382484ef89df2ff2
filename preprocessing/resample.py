"""In-plane resampling of 2D images to the size a network expects."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def resize_2d(image: np.ndarray, size: tuple[int, int], order: int = 1) -> np.ndarray:
    """Resample a (rows, cols) image to ``size`` with spline interpolation of ``order``
    (1 = bilinear). Returns the input unchanged when it already has that size."""
    if image.shape == tuple(size):
        return image
    factors = (size[0] / image.shape[0], size[1] / image.shape[1])
    out = ndimage.zoom(image, factors, order=order, mode="nearest", grid_mode=True)
    return out[: size[0], : size[1]]
