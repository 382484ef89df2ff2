"""Label maps back onto the source grid: the separable path for axis-aligned grids equals
``scipy.ndimage.affine_transform`` (order 0, constant 0) voxel for voxel — scaled, shifted,
flipped and permuted grids, fields of view larger and smaller than the model's — and oblique
grids take scipy itself."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import ndimage

from postprocessing.regrid import labels_to_grid


def reference(labels_map: np.ndarray, labels_affine: np.ndarray, target_affine: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    target_to_model = np.linalg.inv(labels_affine) @ target_affine
    return ndimage.affine_transform(labels_map, target_to_model[:3, :3], offset=target_to_model[:3, 3], output_shape=shape, order=0, mode="constant", cval=0)


def affine(spacing, origin, permutation=(0, 1, 2), flips=(1, 1, 1)) -> np.ndarray:
    """Index (d, h, w) → mm: axis k of the array runs along patient axis permutation[k]."""
    matrix = np.eye(4)
    matrix[:3, :3] = 0
    for k, (axis, flip, step) in enumerate(zip(permutation, flips, spacing, strict=True)):
        matrix[axis, k] = flip * step
    matrix[:3, 3] = origin
    return matrix


@pytest.mark.parametrize("seed", range(40))
def test_axis_aligned_grids_equal_scipy_voxel_for_voxel(seed: int) -> None:
    rng = np.random.default_rng(seed)
    model_shape = tuple(int(n) for n in rng.integers(4, 14, size=3))
    labels_map = rng.integers(0, 4, size=model_shape).astype(np.uint8)
    model = affine(rng.choice([0.5, 0.7, 1.0, 2.0, 1.5], size=3), rng.uniform(-5, 5, size=3),
                   tuple(rng.permutation(3)), tuple(rng.choice([-1, 1], size=3)))
    target_shape = tuple(int(n) for n in rng.integers(4, 30, size=3))
    source = affine(rng.choice([0.35, 0.5, 0.7, 1.0, 2.5], size=3), rng.uniform(-8, 8, size=3))
    np.testing.assert_array_equal(labels_to_grid(labels_map, model, source, target_shape), reference(labels_map, model, source, target_shape))


@pytest.mark.parametrize(("scale", "shift"), list(itertools.product((0.5, 1.0, 2.0), (-0.5, 0.0, 0.5, 1e-12, -1e-12))))
def test_ties_and_edges_round_as_scipy_does(scale: float, shift: float) -> None:
    labels_map = (np.arange(6 * 7 * 8) % 5).reshape(6, 7, 8).astype(np.uint8)
    model = affine((scale,) * 3, (shift,) * 3)
    shape = (13, 15, 17)
    np.testing.assert_array_equal(labels_to_grid(labels_map, model, np.eye(4), shape), reference(labels_map, model, np.eye(4), shape))


def test_an_oblique_grid_is_resampled_by_scipy() -> None:
    rng = np.random.default_rng(7)
    labels_map = rng.integers(0, 3, size=(8, 9, 10)).astype(np.uint8)
    angle = np.deg2rad(20)
    model = np.eye(4)
    model[:3, :3] = [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1.5]]
    np.testing.assert_array_equal(labels_to_grid(labels_map, model, np.eye(4), (12, 12, 12)), reference(labels_map, model, np.eye(4), (12, 12, 12)))


def test_the_same_grid_is_returned_as_it_is() -> None:
    labels_map = np.ones((2, 3, 4), dtype=np.uint8)
    assert labels_to_grid(labels_map, np.eye(4), np.eye(4), (2, 3, 4)) is labels_map
