"""Sliding-window inference agrees with MONAI's ``sliding_window_inference``."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import torch
from monai.data.utils import compute_importance_map, dense_patch_slices
from monai.inferers import sliding_window_inference as monai_sliding_window

from gateway.sliding_window import gaussian_importance, patch_starts, scan_interval, sliding_window_inference

#: Agreement with MONAI: both sum float32 weighted patches; only summation order differs.
TOLERANCE = 1e-5


def _network(patches: np.ndarray) -> np.ndarray:
    """A position-dependent 'network' (so that blending errors would show): 2 output channels."""
    x = patches[:, :1]
    grid = np.indices(x.shape[2:]).sum(axis=0).astype(np.float32)
    return np.concatenate([np.tanh(x * 0.5 + grid * 0.01), x**2 - 0.1 * grid], axis=1).astype(np.float32)


async def _async_network(patches: np.ndarray) -> np.ndarray:
    await asyncio.sleep(0)
    return _network(patches)


@pytest.mark.parametrize(
    ("shape", "roi", "overlap"),
    [
        ((1, 40, 50, 60), (16, 32, 32), 0.25),  # 3D, several patches per axis
        ((1, 20, 20, 20), (32, 16, 16), 0.5),  # first axis shorter than the ROI: padded
        ((1, 64, 64), (32, 32), 0.25),  # 2D
        ((2, 33, 47, 31), (16, 16, 16), 0.6),  # odd sizes, 2 input channels, big overlap
    ],
)
def test_equals_monai(shape, roi, overlap) -> None:
    image = np.random.default_rng(0).normal(size=shape).astype(np.float32)

    ours, stats = asyncio.run(sliding_window_inference(image, roi, _async_network, batch_size=3, overlap=overlap, concurrency=2))
    reference = monai_sliding_window(
        torch.from_numpy(image[None]), roi, 3, lambda t: torch.from_numpy(_network(t.numpy())), overlap=overlap, mode="gaussian"
    )[0].numpy()

    assert ours.shape == reference.shape
    np.testing.assert_allclose(ours, reference, atol=TOLERANCE, rtol=0)
    assert stats.batches == -(-stats.patches // 3)


def test_patch_grid_equals_monai() -> None:
    size, roi = (45, 70, 33), (16, 32, 32)
    interval = scan_interval(size, roi, 0.25)
    expected = [tuple(s.start for s in slices) for slices in dense_patch_slices(size, roi, interval)]
    assert patch_starts(size, roi, interval) == expected


def test_importance_map_equals_monai() -> None:
    expected = compute_importance_map((16, 24, 8), mode="gaussian", sigma_scale=0.125).numpy()
    np.testing.assert_allclose(gaussian_importance((16, 24, 8)), expected, rtol=1e-6)


def test_roi_rank_must_match_image() -> None:
    with pytest.raises(ValueError, match="does not match"):
        asyncio.run(sliding_window_inference(np.zeros((1, 8, 8), np.float32), (4, 4, 4), _async_network))


@pytest.mark.parametrize("concurrency", [1, 3])
def test_concurrency_bounds_the_patches_in_memory(concurrency, monkeypatch) -> None:
    """Patch batches are stacked only when a concurrency slot takes them: at most
    ``concurrency`` stacked batches exist (and are in flight) at once."""
    import weakref

    image = np.random.default_rng(1).normal(size=(1, 40, 50, 60)).astype(np.float32)
    stacked: list[weakref.ref] = []
    in_flight = peak_alive = peak_in_flight = 0
    numpy_stack = np.stack

    def tracking_stack(arrays, *args, **kwargs):
        nonlocal peak_alive
        result = numpy_stack(arrays, *args, **kwargs)
        if result.ndim != image.ndim + 1:  # not a batch of patches [n, C, *roi]
            return result
        stacked.append(weakref.ref(result))
        peak_alive = max(peak_alive, sum(ref() is not None for ref in stacked))
        return result

    async def tracking_network(patches: np.ndarray) -> np.ndarray:
        nonlocal in_flight, peak_in_flight
        in_flight += 1
        peak_in_flight = max(peak_in_flight, in_flight)
        await asyncio.sleep(0.001)
        in_flight -= 1
        return _network(patches)

    reference, _ = asyncio.run(sliding_window_inference(image, (16, 32, 32), _async_network, batch_size=2, concurrency=8))
    monkeypatch.setattr(np, "stack", tracking_stack)
    ours, stats = asyncio.run(sliding_window_inference(image, (16, 32, 32), tracking_network, batch_size=2, concurrency=concurrency))
    monkeypatch.undo()

    assert len(stacked) == stats.batches > 2 * concurrency
    assert peak_in_flight == concurrency
    assert peak_alive <= concurrency
    np.testing.assert_allclose(ours, reference, atol=TOLERANCE, rtol=0)
