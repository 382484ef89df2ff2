"""The steps between a cascade's model calls (:mod:`postprocessing.cascade`), against the torch code
deepbet runs between its two networks."""

from __future__ import annotations

import numpy as np
import pytest

from postprocessing import PostprocessingSpec
from postprocessing.cascade import check_stage_specs, stage_labels
from preprocessing import PreparedInput, PreprocessingSpec, VolumeGeometry

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
