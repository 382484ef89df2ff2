"""The region between a cascade's stages, against deepbet's own code (``BrainExtraction.get_bbox``
and ``get_bbox_with_margin``, torch, float32) — the rule it generalises."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from postprocessing.region import RegionSpec, region_box
from preprocessing.errors import InvalidSpec


def _deepbet_box(mask_small: np.ndarray, shape: tuple[int, ...], margin: float, threshold: float):
    import torch
    from deepbet.bet import BrainExtraction

    rs = [torch.where(torch.from_numpy(mask_small).float().mean(dims) > threshold)[0] for dims in [(1, 2), (0, 2), (0, 1)]]
    if not all(r.numel() > 0 for r in rs):
        return None
    # deepbet's method, with its plane threshold (0.02 in deepbet) made a parameter
    bet = SimpleNamespace(get_bbox=lambda x: BrainExtraction.get_bbox(x, threshold))
    return BrainExtraction.get_bbox_with_margin(bet, torch.from_numpy(mask_small).float(), shape, margin)


def _blob(rng, small: int, centre, radii) -> np.ndarray:
    grid = np.indices((small, small, small)).astype(np.float32)
    inside = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii)) <= 1
    noise = rng.random((small, small, small)) < 0.002  # stray voxels the plane fraction ignores
    return (inside | noise).astype(np.uint8)


@pytest.mark.parametrize("case", range(12))
def test_box_equals_deepbet(case):
    rng = np.random.default_rng(case)
    small = 32
    shapes = [(176, 256, 256), (256, 256, 256), (97, 130, 211), (40, 40, 40)]
    shape = shapes[case % len(shapes)]
    centre = rng.uniform(8, 24, size=3)
    radii = rng.uniform(3, 12, size=3)
    labels = _blob(rng, small, centre, radii)
    threshold = [0.0, 0.02, 0.05][case % 3]
    margin = [0.1, 0.0, 0.25][case % 3]
    expected = _deepbet_box(labels, shape, margin, threshold)
    got = region_box(labels, RegionSpec(label=1, min_plane_fraction=threshold, margin_fraction=margin), shape, (1.0, 1.0, 1.0))
    assert _pairs(got) == _pairs(expected)


def _pairs(box):
    return None if box is None else [(part.start, part.stop) for part in box]


def test_margin_in_mm_widens_each_side_by_that_many_voxels():
    labels = np.zeros((10, 10, 10), np.uint8)
    labels[4:6, 4:6, 4:6] = 1
    plain = region_box(labels, RegionSpec(), (20, 20, 20), (2.0, 1.0, 0.5))
    wider = region_box(labels, RegionSpec(margin_mm=2.0), (20, 20, 20), (2.0, 1.0, 0.5))
    assert plain == (slice(8, 12),) * 3
    assert wider == (slice(7, 13), slice(6, 14), slice(4, 16))


def test_nothing_found_is_none_and_other_labels_do_not_count():
    labels = np.zeros((8, 8, 8), np.uint8)
    assert region_box(labels, RegionSpec(), (16, 16, 16), (1.0,) * 3) is None
    labels[2:4, 2:4, 2:4] = 2
    assert region_box(labels, RegionSpec(label=1), (16, 16, 16), (1.0,) * 3) is None
    assert region_box(labels, RegionSpec(label=2), (16, 16, 16), (1.0,) * 3) == (slice(4, 8),) * 3


def test_spec_round_trip_and_refusals():
    spec = RegionSpec.from_dict({"label": 1, "min_plane_fraction": 0.02, "margin_fraction": 0.1})
    assert RegionSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(InvalidSpec, match="label"):
        RegionSpec.from_dict({"label": 0})
    with pytest.raises(InvalidSpec, match="margin_mm"):
        RegionSpec.from_dict({"margin_mm": -1})
    with pytest.raises(InvalidSpec, match="unknown"):
        RegionSpec.from_dict({"margins": 1})
