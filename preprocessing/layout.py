"""Tensor shape: centered crop/pad, 2.5D slice stacks and the final channel-first layout.

Arrays come in spatial-first — (H, W[, 3]) for an image, (D, H, W[, 3]) for a volume — and
leave channel-first: [C, H, W], [N, C, H, W] (one 2D or 2.5D item per slice) or [C, D, H, W].
"""

from __future__ import annotations

import numpy as np


def crop_or_pad(
    array: np.ndarray, size: tuple[int, ...], axes: tuple[int, ...], pad_value: float
) -> tuple[np.ndarray, list[int]]:
    """Center ``array`` in ``size`` along ``axes``: crop what is larger, pad what is smaller
    with ``pad_value``. Returns the array and, per axis, the input index that became output
    index 0 (negative when padded), for the affine."""
    starts = []
    slices = [slice(None)] * array.ndim
    pads = [(0, 0)] * array.ndim
    for axis, target in zip(axes, size):
        length = array.shape[axis]
        if length >= target:
            start = (length - target) // 2
            slices[axis] = slice(start, start + target)
        else:
            before = (target - length) // 2
            pads[axis] = (before, target - length - before)
            start = -before
        starts.append(start)
    out = array[tuple(slices)]
    if any(p != (0, 0) for p in pads):
        out = np.pad(out, pads, mode="constant", constant_values=pad_value)
    return out, starts


def image_to_chw(image: np.ndarray, channels: int) -> np.ndarray:
    """(H, W) or (H, W, 3) → [C, H, W]; a grayscale image is repeated for 3 channels."""
    if image.ndim == 3:
        return np.moveaxis(image, -1, 0)
    chw = image[np.newaxis]
    return np.repeat(chw, channels, axis=0) if channels > 1 else chw


def volume_to_cdhw(volume: np.ndarray, channels: int) -> np.ndarray:
    """(D, H, W) or (D, H, W, 3) → [C, D, H, W]."""
    if volume.ndim == 4:
        return np.moveaxis(volume, -1, 0)
    cdhw = volume[np.newaxis]
    return np.repeat(cdhw, channels, axis=0) if channels > 1 else cdhw


def volume_to_slices(volume: np.ndarray, channels: int, stack_slices: int) -> np.ndarray:
    """(D, H, W[, 3]) → [D, C, H, W]: each slice with ``stack_slices`` adjacent slices as
    channels (2.5D; the first and last slices repeat at the edges), or its own channels."""
    if volume.ndim == 4:
        return np.moveaxis(volume, -1, 1)
    if stack_slices == 1:
        slices = volume[:, np.newaxis]
        return np.repeat(slices, channels, axis=1) if channels > 1 else slices
    half = stack_slices // 2
    neighbours = np.arange(volume.shape[0])[:, np.newaxis] + np.arange(-half, half + 1)[np.newaxis]
    return volume[np.clip(neighbours, 0, volume.shape[0] - 1)]
