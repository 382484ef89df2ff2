"""Sliding-window inference over volumes larger than a network's input, with Gaussian blending.

Same patch grid, padding and importance map as MONAI's ``sliding_window_inference`` (so that
results agree with it), but numpy-only and asynchronous: patches go to Triton in batches of
``batch_size`` with up to ``concurrency`` batches in flight, which Triton's dynamic batcher
can merge with other requests' work. A batch's patches are cut out of the volume only when
one of the ``concurrency`` slots takes it, so ``concurrency`` also bounds the patches (and
predictions) held in memory at once: ``concurrency × batch_size`` of each. The predictor is any async callable, so tiling does not
care where inference runs.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Awaitable, Callable, Sequence

import numpy as np

Predictor = Callable[[np.ndarray], Awaitable[np.ndarray]]


@dataclass(frozen=True)
class SlidingWindowStats:
    patches: int
    batches: int


def scan_interval(image_size: Sequence[int], roi_size: Sequence[int], overlap: float) -> tuple[int, ...]:
    """Step between patch starts per axis: ``int(roi * (1 - overlap))``, at least 1."""
    return tuple(
        roi if roi == size else max(int(roi * (1 - overlap)), 1) for size, roi in zip(image_size, roi_size)
    )


def patch_starts(image_size: Sequence[int], roi_size: Sequence[int], interval: Sequence[int]) -> list[tuple[int, ...]]:
    """Start index of every patch (C-order over axes); the last patch of an axis is shifted
    back so that it ends at the border instead of running past it."""
    per_axis = []
    for size, roi, step in zip(image_size, roi_size, interval):
        count = next((d for d in range(int(math.ceil(size / step))) if d * step + roi >= size), 0) + 1
        per_axis.append([d * step - max(d * step + roi - size, 0) for d in range(count)])
    grids = np.meshgrid(*per_axis, indexing="ij")
    return [tuple(int(v) for v in starts) for starts in np.stack([g.ravel() for g in grids], axis=1)]


def gaussian_importance(roi_size: Sequence[int], sigma_scale: float = 0.125) -> np.ndarray:
    """Separable Gaussian weights peaking at the patch centre (sigma = scale × size per axis),
    with non-positive weights clamped to max(min, 1e-3)."""
    weights = np.ones((), dtype=np.float32)
    for size in roi_size:
        x = np.arange(-(size - 1) / 2.0, (size - 1) / 2.0 + 1, dtype=np.float32)
        axis = np.exp(x**2 / (-2 * (size * sigma_scale) ** 2)).astype(np.float32)
        weights = np.multiply.outer(weights, axis)
    return np.maximum(weights, max(float(weights.min()), 1e-3)).astype(np.float32)


async def sliding_window_inference(
    image: np.ndarray,
    roi_size: Sequence[int],
    predictor: Predictor,
    batch_size: int = 4,
    overlap: float = 0.25,
    concurrency: int = 4,
    sigma_scale: float = 0.125,
) -> tuple[np.ndarray, SlidingWindowStats]:
    """Blend ``predictor`` outputs over patches of ``image`` ([C, *spatial]) into [C_out, *spatial].

    ``predictor`` maps [n, C, *roi] to [n, C_out, *roi]. Axes shorter than the ROI are padded
    with zeros (symmetrically) and cropped back afterwards.
    """
    spatial = image.shape[1:]
    if len(roi_size) != len(spatial):
        raise ValueError(f"roi_size {tuple(roi_size)} does not match the image's spatial shape {spatial}")
    padding = [((max(r - s, 0)) // 2, max(r - s, 0) - max(r - s, 0) // 2) for s, r in zip(spatial, roi_size)]
    padded = np.pad(image, [(0, 0), *padding]) if any(sum(p) for p in padding) else image
    padded_size = padded.shape[1:]

    starts = patch_starts(padded_size, roi_size, scan_interval(padded_size, roi_size, overlap))
    weights = gaussian_importance(roi_size, sigma_scale)
    output: np.ndarray | None = None
    weight_sum = np.zeros(padded_size, dtype=np.float32)
    batches = [starts[i : i + batch_size] for i in range(0, len(starts), batch_size)]
    pending = iter(batches)

    def window(start: tuple[int, ...]) -> tuple[slice, ...]:
        return tuple(slice(s, s + r) for s, r in zip(start, roi_size))

    def blend(batch: list[tuple[int, ...]], predictions: np.ndarray) -> None:
        nonlocal output
        if output is None:
            output = np.zeros((predictions.shape[1], *padded_size), dtype=np.float32)
        for start, prediction in zip(batch, predictions):
            region = window(start)
            output[(slice(None), *region)] += prediction.astype(np.float32) * weights
            weight_sum[region] += weights

    async def worker() -> None:
        """Takes the next batch, stacks its patches, predicts and blends them: a batch's
        patches and predictions exist only while one of ``concurrency`` workers holds it."""
        for batch in pending:  # one shared iterator: each batch goes to exactly one worker
            blend(batch, await predictor(np.stack([padded[(slice(None), *window(s))] for s in batch])))

    workers = [asyncio.ensure_future(worker()) for _ in range(min(max(concurrency, 1), len(batches)))]
    try:
        for finished in asyncio.as_completed(workers):
            await finished
    finally:  # one batch failed (or the request's deadline passed): the others stop holding Triton
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    assert output is not None
    output /= weight_sum
    crop = tuple(slice(before, before + size) for (before, _), size in zip(padding, spatial))
    return output[(slice(None), *crop)], SlidingWindowStats(patches=len(starts), batches=len(batches))
