"""largest_component, fill_holes and remove_small_objects against MONAI's transforms, and the first
two against deepbet's own tools (cc3d's connected components, fill_voids)."""

from __future__ import annotations

import math

import cc3d
import fill_voids
import numpy as np
import pytest
from scipy import ndimage
from monai.transforms import FillHoles, KeepLargestConnectedComponent, RemoveSmallObjects

from postprocessing import PostprocessingSpec, refine

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::DeprecationWarning", "ignore::UserWarning")


@pytest.fixture
def skimage() -> None:
    """MONAI's KeepLargestConnectedComponent and RemoveSmallObjects run scikit-image (a test
    dependency of these references only; the product never imports it)."""
    pytest.importorskip("skimage", reason="scikit-image, which MONAI's reference transforms run, is not installed")


def _spec(**step) -> PostprocessingSpec:
    return PostprocessingSpec.from_dict({"steps": [step]})


def _unit(labels: np.ndarray) -> tuple[float, ...]:
    return (1.0,) * labels.ndim


def _present(labels: np.ndarray) -> list[int]:
    return [int(v) for v in np.unique(labels) if v]


@pytest.mark.parametrize("connectivity", [1, 2, 3])
def test_largest_component_is_monais(label_map: np.ndarray, connectivity: int, skimage) -> None:
    reference = KeepLargestConnectedComponent(
        applied_labels=None, is_onehot=False, independent=True, connectivity=min(connectivity, label_map.ndim)
    )(label_map[None].copy())[0]
    ours = refine(label_map, _spec(op="largest_component", connectivity=connectivity), _unit(label_map))
    assert ours is not label_map and not np.array_equal(ours, label_map), "the case must have components to drop"
    assert np.array_equal(ours, np.asarray(reference))


def test_largest_component_of_chosen_labels_leaves_the_others(label_map: np.ndarray, skimage) -> None:
    chosen = _present(label_map)[-1:]
    reference = KeepLargestConnectedComponent(applied_labels=chosen, is_onehot=False, independent=True)(label_map[None].copy())[0]
    assert np.array_equal(refine(label_map, _spec(op="largest_component", labels=chosen), _unit(label_map)), np.asarray(reference))


def test_largest_component_is_cc3ds_with_its_full_neighbourhood(label_map: np.ndarray) -> None:
    """cc3d's default connectivity, 26 in 3D (8 in 2D), is the step's default 3."""
    expected = label_map.copy()
    for value in _present(label_map):
        mask = label_map == value
        largest = cc3d.largest_k(mask, k=1, connectivity=26 if mask.ndim == 3 else 8).astype(bool)
        expected[mask & ~largest] = 0
    assert np.array_equal(refine(label_map, _spec(op="largest_component"), _unit(label_map)), expected)


@pytest.mark.parametrize("connectivity", [1, 2, 3])
def test_fill_holes_is_monais(label_map: np.ndarray, connectivity: int) -> None:
    reference = FillHoles(applied_labels=None, connectivity=min(connectivity, label_map.ndim))(label_map[None].copy())[0]
    ours = refine(label_map, _spec(op="fill_holes", connectivity=connectivity), _unit(label_map))
    assert connectivity > 1 or not np.array_equal(ours, label_map), "the case must have holes"
    assert np.array_equal(ours, np.asarray(reference))


def test_fill_holes_of_chosen_labels_is_monais(label_map: np.ndarray) -> None:
    chosen = _present(label_map)[:1]
    reference = FillHoles(applied_labels=chosen, connectivity=1)(label_map[None].copy())[0]
    assert np.array_equal(refine(label_map, _spec(op="fill_holes", labels=chosen), _unit(label_map)), np.asarray(reference))


def test_fill_holes_is_fill_voids(label_map: np.ndarray) -> None:
    """fill_voids floods the background from the border face to face: connectivity 1."""
    expected = label_map.copy()
    for value in _present(label_map):
        expected[fill_voids.fill(expected == value, in_place=False)] = value
    assert np.array_equal(refine(label_map, _spec(op="fill_holes"), _unit(label_map)), expected)


def test_a_label_enclosed_by_another_is_filled_over_as_monai_does() -> None:
    labels = np.zeros((9, 9), np.uint8)
    labels[1:8, 1:8] = 1
    labels[3:6, 3:6] = 0
    labels[4, 4] = 2
    filled = refine(labels, _spec(op="fill_holes", labels=[1]), (1.0, 1.0))
    assert (filled[1:8, 1:8] == 1).all() and np.array_equal(filled, np.asarray(FillHoles([1])(labels[None].copy())[0]))


@pytest.mark.parametrize(
    ("spacing", "min_size_mm3", "connectivity"),
    [((1.0, 1.0, 1.0), 5.0, 1), ((0.7, 0.9, 2.5), 12.0, 1), ((0.5, 0.5, 3.0), 20.0, 3), ((1.2, 0.8, 1.0), 7.3, 2)],
)
def test_remove_small_objects_is_monais_by_measure(label_map: np.ndarray, spacing, min_size_mm3: float, connectivity: int, skimage) -> None:
    """MONAI's RemoveSmallObjects treats a label map of several values as already labelled
    objects (skimage's convention), so the reference runs on each label's mask. MONAI and
    skimage < 0.26 remove objects *smaller* than ceil(min_size / voxel volume) voxels; skimage
    0.26 turns MONAI's positional ``min_size`` into its new inclusive ``max_size``, so a
    component of exactly that many voxels is compared with the documented rule: it stays."""
    spacing = spacing[-label_map.ndim:]
    connectivity = min(connectivity, label_map.ndim)
    boundary = math.ceil(min_size_mm3 / float(np.prod(spacing)))
    expected = label_map.copy()
    at_boundary = np.zeros(label_map.shape, bool)
    for value in _present(label_map):
        mask = label_map == value
        kept = np.asarray(RemoveSmallObjects(min_size=min_size_mm3, connectivity=connectivity, by_measure=True, pixdim=spacing)(mask[None]))[0]
        expected[mask & ~kept] = 0
        ids, _ = ndimage.label(mask, ndimage.generate_binary_structure(mask.ndim, connectivity))
        at_boundary |= (np.bincount(ids.ravel()) == boundary)[ids] & mask
    ours = refine(label_map, _spec(op="remove_small_objects", min_size_mm3=min_size_mm3, connectivity=connectivity), spacing)
    assert not np.array_equal(ours, label_map), "the case must have small objects"
    assert np.array_equal(ours[~at_boundary], expected[~at_boundary])
    assert np.array_equal(ours[at_boundary], label_map[at_boundary])


def test_remove_small_objects_counts_volume_not_voxels() -> None:
    """Eight voxels of 0.5 mm³ are 4 mm³: removed under 5 mm³, kept at 4 mm³ (not smaller)."""
    labels = np.zeros((6, 6, 6), np.uint8)
    labels[:2, :2, :2] = 1
    spacing = (0.5, 1.0, 1.0)
    assert not refine(labels, _spec(op="remove_small_objects", min_size_mm3=5.0), spacing).any()
    assert np.array_equal(refine(labels, _spec(op="remove_small_objects", min_size_mm3=4.0), spacing), labels)


def test_no_spec_or_no_label_steps_is_a_no_op(label_map: np.ndarray) -> None:
    for spec in (None, PostprocessingSpec(), PostprocessingSpec.from_dict({"steps": [{"op": "argmax"}]})):
        assert refine(label_map, spec, _unit(label_map)) is label_map
