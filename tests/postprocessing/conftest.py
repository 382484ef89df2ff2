"""Synthetic label maps for the post-processing tests: seeded blobs, several labels, 2D and 3D."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage


def _ties(labels: np.ndarray) -> bool:
    """Whether some label's two largest components are as large, at some connectivity (MONAI
    breaks such a tie by numpy's sort order, which is not specified)."""
    for value in range(1, int(labels.max()) + 1):
        for connectivity in range(1, labels.ndim + 1):
            ids, _ = ndimage.label(labels == value, ndimage.generate_binary_structure(labels.ndim, connectivity))
            sizes = np.sort(np.bincount(ids.ravel())[1:])
            if len(sizes) > 1 and sizes[-1] == sizes[-2]:
                return True
    return False


def blobs(shape: tuple[int, ...], labels: int, seed: int, sigma: float = 1.5, fill: float = 0.35) -> np.ndarray:
    """A uint8 label map of irregular blobs with holes and specks: smoothed noise cut at
    quantiles (each label about ``fill / labels`` of the voxels), so every label has several
    components of different sizes, and one certain hole. Seeds whose map has a tie of largest components are passed over."""
    rng = np.random.default_rng(seed)
    while True:
        field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
        levels = np.quantile(field, np.linspace(1.0 - fill, 1.0, labels + 1))
        out = np.zeros(shape, dtype=np.uint8)
        for value, low in enumerate(levels[:-1], start=1):
            out[field > low] = value
        out[rng.random(shape) < 0.01] = rng.integers(1, labels + 1)  # specks
        out[(slice(1, 6),) * len(shape)] = 1  # a closed shell of label 1 around a one-voxel hole
        out[(3,) * len(shape)] = 0
        if not _ties(out):
            return out


#: (shape, labels, seed): 2D and 3D maps, one or several labels.
CASES = [((48, 40), 1, 0), ((48, 40), 3, 1), ((20, 24, 22), 1, 2), ((20, 24, 22), 2, 3), ((16, 18, 20), 3, 4)]


@pytest.fixture(params=CASES, ids=lambda case: f"{len(case[0])}d-{case[1]}labels-seed{case[2]}")
def label_map(request) -> np.ndarray:
    shape, labels, seed = request.param
    return blobs(shape, labels, seed)
