"""dilate / erode in mm: against scipy.ndimage's binary morphology with the ellipsoid structuring
element, and against the brute-force definition (Euclidean distance on the grid's spacing)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import ndimage

from postprocessing import PostprocessingSpec, refine

SPACINGS = [(1.0, 1.0, 1.0), (0.8, 1.3, 2.5), (3.0, 0.7, 0.7)]
RADII_MM = [1.0, 2.0, 2.6, 4.1]


def _spec(**step) -> PostprocessingSpec:
    return PostprocessingSpec.from_dict({"steps": [step]})


def ellipsoid(mm: float, spacing: tuple[float, ...]) -> np.ndarray:
    """Offsets o with Σ (o_i · spacing_i)² ≤ mm², as a scipy structuring element."""
    reach = [int(mm // s) for s in spacing]
    grids = np.meshgrid(*[np.arange(-r, r + 1) * s for r, s in zip(reach, spacing)], indexing="ij")
    return sum(g**2 for g in grids) <= mm**2


def _per_label_reference(labels: np.ndarray, mm: float, spacing, op: str) -> np.ndarray:
    """Each label ascending; dilation grows into background only, erosion clears to background."""
    out = labels.copy()
    element = ellipsoid(mm, spacing)
    for value in [int(v) for v in np.unique(labels) if v]:
        mask = out == value
        if op == "dilate":
            out[ndimage.binary_dilation(mask, element) & (out == 0)] = value
        else:
            out[mask & ~ndimage.binary_erosion(mask, element, border_value=0)] = 0
    return out


@pytest.mark.parametrize("op", ["dilate", "erode"])
@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("mm", RADII_MM)
def test_dilate_and_erode_are_scipys_with_the_ellipsoid(label_map: np.ndarray, op: str, spacing, mm: float) -> None:
    spacing = spacing[-label_map.ndim:]
    ours = refine(label_map, _spec(op=op, mm=mm), spacing)
    assert np.array_equal(ours, _per_label_reference(label_map, mm, spacing, op))


def _brute_force(mask: np.ndarray, mm: float, spacing, op: str) -> np.ndarray:
    """The definition, voxel by voxel: distance to the nearest label voxel ≤ mm (dilate); no
    voxel that is not the label, outside the array included, within mm (erode)."""
    points = np.argwhere(mask) * spacing if op == "dilate" else np.argwhere(np.pad(~mask, 1, constant_values=True)) - 1
    if op == "erode":
        points = points * spacing
    out = np.zeros_like(mask)
    for index in itertools.product(*map(range, mask.shape)):
        nearest = np.sqrt((((points - np.array(index) * spacing) ** 2).sum(axis=1)).min())
        out[index] = nearest <= mm if op == "dilate" else (mask[index] and nearest > mm)
    return out


@pytest.mark.parametrize("op", ["dilate", "erode"])
@pytest.mark.parametrize(("shape", "spacing", "mm"), [((17, 15), (0.6, 1.4), 2.0), ((9, 11, 10), (2.0, 0.9, 1.1), 2.5), ((9, 11, 10), (1.0, 1.0, 1.0), 1.8)])
def test_dilate_and_erode_are_the_distance_definition(op: str, shape, spacing, mm: float) -> None:
    rng = np.random.default_rng(7)
    mask = ndimage.gaussian_filter(rng.standard_normal(shape), 2.0) > -0.1
    labels = mask.astype(np.uint8)
    ours = refine(labels, _spec(op=op, mm=mm), spacing)
    expected = _brute_force(mask, mm, np.array(spacing), op)
    assert 0 < expected.sum() < mask.size and not np.array_equal(expected, mask)
    assert np.array_equal(ours, expected.astype(np.uint8))


def test_dilation_never_overwrites_another_label_and_chosen_labels_alone_change() -> None:
    labels = np.zeros((12, 12), np.uint8)
    labels[5:7, 2:4] = 1
    labels[5:7, 5:7] = 2
    grown = refine(labels, _spec(op="dilate", mm=2.0, labels=[1]), (1.0, 1.0))
    assert np.array_equal(grown[labels == 2], labels[labels == 2])
    assert (grown == 1).sum() > (labels == 1).sum() and (grown == 2).sum() == 4
    eroded = refine(labels, _spec(op="erode", mm=1.0, labels=[2]), (1.0, 1.0))
    assert not (eroded == 2).any() and np.array_equal(eroded == 1, labels == 1)


def test_steps_run_in_order_on_the_grid_spacing(label_map: np.ndarray) -> None:
    spacing = (1.5, 0.8, 0.8)[-label_map.ndim:]
    spec = PostprocessingSpec.from_dict({"steps": [
        {"op": "largest_component"}, {"op": "dilate", "mm": 1.7}, {"op": "fill_holes"}, {"op": "erode", "mm": 1.0},
    ]})
    before, expected = label_map.copy(), label_map
    for step in spec.steps:
        expected = refine(expected, PostprocessingSpec((step,)), spacing)
    ours = refine(label_map, spec, spacing)
    assert np.array_equal(ours, expected) and not np.array_equal(ours, label_map)
    assert np.array_equal(label_map, before), "refine never changes its input"


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("op", ["largest_component", "fill_holes", "remove_small_objects"])
def test_component_steps_on_the_labels_box_equal_the_whole_map(seed: int, op: str) -> None:
    """refine runs the component steps on each label's bounding box; the answer is what the
    step gives on the whole map — labels touching the border, shells with holes, ties of sizes,
    several labels."""
    from postprocessing.components import fill_holes, keep_largest_component, remove_small_objects

    rng = np.random.default_rng(seed)
    shape = tuple(int(n) for n in rng.integers(6, 20, size=3))
    labels = np.zeros(shape, dtype=np.uint8)
    for _ in range(int(rng.integers(1, 6))):  # boxes and shells of labels 1..3 anywhere, borders included
        value = int(rng.integers(1, 4))
        lo = [int(rng.integers(0, n - 2)) for n in shape]
        hi = [int(rng.integers(l + 2, n + 1)) for l, n in zip(lo, shape)]
        labels[tuple(slice(a, b) for a, b in zip(lo, hi))] = value
        if rng.random() < 0.5 and all(b - a > 2 for a, b in zip(lo, hi)):
            labels[tuple(slice(a + 1, b - 1) for a, b in zip(lo, hi))] = 0  # a hollow shell: a hole
    labels[rng.random(shape) < 0.03] = 0
    connectivity = int(rng.integers(1, 4))
    step = {"op": op, "connectivity": connectivity, **({"min_size_mm3": 6.0} if op == "remove_small_objects" else {})}
    expected = labels.copy()
    for value in (1, 2, 3):
        if op == "largest_component":
            keep_largest_component(expected, value, connectivity)
        elif op == "fill_holes":
            fill_holes(expected, value, connectivity)
        else:
            remove_small_objects(expected, value, 6.0, (1.0, 1.0, 1.0), connectivity)
    np.testing.assert_array_equal(refine(labels, _spec(**step), (1.0, 1.0, 1.0)), expected)
