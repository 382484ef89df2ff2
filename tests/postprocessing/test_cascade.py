"""The steps between a cascade's model calls (:mod:`postprocessing.cascade`), against the torch code
deepbet runs between its two networks."""

from __future__ import annotations

import numpy as np
import pytest

from pydicom import Dataset

from postprocessing import PostprocessingSpec, refine
from postprocessing.cascade import check_stage_specs, labels_on_source, stage_labels
from postprocessing.regrid import labels_to_grid
from preprocessing import PreparedInput, PreprocessingSpec, VolumeGeometry
from preprocessing.pipeline import SeriesVolume

THRESHOLD = PostprocessingSpec.from_dict({"steps": [{"op": "threshold", "label": 1, "probability": 0.5}]})


def _prepared(shape) -> PreparedInput:
    geometry = VolumeGeometry(np.eye(4), (1.0, 1.0, 1.0), shape, "RAS")
    return PreparedInput(np.zeros((1, *shape), np.float32), {}, geometry, geometry)


@pytest.mark.parametrize("crop", [(17, 40, 33), (64, 64, 64), (9, 101, 50)])
def test_labels_pasted_back_equal_deepbets_resize_then_threshold(crop):
    """deepbet: ``mask[bbox] = F.interpolate(p[None, None], mask[bbox].shape, mode="nearest-exact")``,
    then ``mask > .5``; medserve thresholds on the model grid, then resizes the labels the same way."""
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(sum(crop))
    model_grid = (32, 32, 32)
    probability = rng.random(model_grid).astype(np.float32)
    scores = np.stack([1 - probability, probability])
    base_shape = (80, 120, 110)
    box = tuple(slice(5, 5 + n) for n in crop)
    expected = np.zeros(base_shape, np.float32)
    expected[box] = F.interpolate(torch.from_numpy(probability)[None, None], crop, mode="nearest-exact")[0, 0].numpy()
    got = stage_labels(scores, _prepared(model_grid), THRESHOLD, box, base_shape)
    np.testing.assert_array_equal(got, (expected > 0.5).astype(np.uint8))


def test_stages_must_share_the_loaded_volume():
    volume = dict(layout="CDHW", orientation="RAS", output_size=(8, 8, 8))
    assert check_stage_specs(PreprocessingSpec(**volume), PreprocessingSpec(**{**volume, "output_size": (16, 16, 16)})) == []
    problems = check_stage_specs(PreprocessingSpec(**volume), PreprocessingSpec(**{**volume, "orientation": "SPL"}))
    assert any("orientation" in p for p in problems)
    problems = check_stage_specs(PreprocessingSpec(**volume), PreprocessingSpec(**{**volume, "size_mode": "crop_pad"}))
    assert any("resize" in p for p in problems)


def _random_refinement(rng: np.random.Generator) -> PostprocessingSpec:
    """One to four label-map steps of every kind, on every label or on chosen ones."""
    steps = []
    for _ in range(int(rng.integers(1, 5))):
        op = str(rng.choice(["largest_component", "fill_holes", "remove_small_objects", "dilate", "erode"]))
        step: dict = {"op": op}
        if op in ("dilate", "erode"):
            step["mm"] = float(rng.choice([1.0, 2.5, 4.0]))
        else:
            step["connectivity"] = int(rng.integers(1, 4))
        if op == "remove_small_objects":
            step["min_size_mm3"] = 20.0
        if rng.random() < 0.3:
            step["labels"] = [int(rng.integers(1, 4))]
        steps.append(step)
    return PostprocessingSpec.from_dict({"steps": steps, "grid": "source"})


def _random_labels(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Boxes and hollow shells of labels 1..3 (none at all, sometimes), borders included, with
    specks of background."""
    labels = np.zeros(shape, dtype=np.uint8)
    for _ in range(int(rng.integers(0, 5))):
        lo = [int(rng.integers(0, n - 2)) for n in shape]
        hi = [int(rng.integers(a + 2, min(a + 14, n) + 1)) for a, n in zip(lo, shape)]
        labels[tuple(slice(a, b) for a, b in zip(lo, hi))] = int(rng.integers(1, 4))
        if rng.random() < 0.5 and all(b - a > 2 for a, b in zip(lo, hi)):
            labels[tuple(slice(a + 1, b - 1) for a, b in zip(lo, hi))] = 0
    labels[rng.random(shape) < 0.02] = 0
    return labels


# source index -> base index: the same grid; reoriented (flips, a permutation); the source
# twice as fine along one axis and shifted (nearest neighbour at half-voxels)
RELATIONS = {
    "same grid": np.eye(4),
    "reoriented": np.array([[1.0, 0, 0, 0], [0, 0, -1, 29], [0, -1, 0, 33], [0, 0, 0, 1]]),
    "finer and shifted": np.array([[0.5, 0, 0, 1.5], [0, 1, 0, -2], [0, 0, 1, 0], [0, 0, 0, 1]]),
}


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("relation", RELATIONS)
def test_refinement_on_the_findings_box_equals_the_whole_source_grid(seed: int, relation: str) -> None:
    """labels_on_source refines on the box of the labels (grown by the dilations' reach): the
    answer equals refining the whole source grid, voxel for voxel, and the labels on the
    loaded grid are left as they were."""
    rng = np.random.default_rng(seed)
    base_shape = (24, 30, 34)
    on_base = _random_labels(rng, base_shape)
    before = on_base.copy()
    base_affine = np.diag([1.2, 0.9, 0.9, 1.0])
    source_to_base = RELATIONS[relation]
    source_affine = base_affine @ source_to_base
    source_shape = (24, 34, 30) if relation == "reoriented" else (40, 30, 34) if relation == "finer and shifted" else base_shape
    spacing = tuple(float(s) for s in np.linalg.norm(source_affine[:3, :3], axis=0))
    source = VolumeGeometry(source_affine, spacing, source_shape, "LPS")
    base = SeriesVolume(np.zeros(base_shape, np.float32), base_affine, {}, Dataset(), source)
    spec = _random_refinement(rng)

    expected = refine(labels_to_grid(on_base, base_affine, source_affine, source_shape), spec, spacing)

    np.testing.assert_array_equal(labels_on_source(on_base, base, spec), expected)
    np.testing.assert_array_equal(on_base, before)


@pytest.mark.parametrize("seed", range(12))
def test_refine_on_the_box_the_steps_can_change_equals_the_steps_on_the_whole_map(seed: int) -> None:
    """refine runs the steps on the labels' box grown by the dilations' reach: the same map as
    each step run on the whole of it, voxel for voxel."""
    from postprocessing.morphology import _run

    rng = np.random.default_rng(100 + seed)
    labels = _random_labels(rng, (24, 30, 34))
    spec = _random_refinement(rng)
    spacing = (1.2, 0.9, 0.9)
    whole = labels.copy()
    for step in spec.label_steps:
        _run(step, whole, spacing)

    np.testing.assert_array_equal(refine(labels, spec, spacing), whole)
