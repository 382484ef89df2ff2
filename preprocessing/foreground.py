"""Crop to the foreground: the bounding box of the voxels above a value, plus a margin.

The definition is MONAI's ``CropForeground`` (``select_fn=lambda x: x > above``,
``allow_smaller=True``): the box spans, on every axis, the first to the last index holding a
foreground voxel, grows by the margin on both sides and is clipped to the image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .spec import ForegroundCrop


def foreground_box(values: np.ndarray, crop: ForegroundCrop, spacing_mm: Sequence[float]) -> tuple[slice, ...] | None:
    """Per spatial axis of ``values`` (spacing ``spacing_mm`` each, in mm) the slice of the
    foreground's box with its margin; None when no voxel is foreground. A trailing RGB axis
    (values of 1 more dimension than ``spacing_mm``) counts a pixel when any sample does."""
    mask = values > np.float32(crop.above)
    if mask.ndim > len(spacing_mm):
        mask = mask.any(axis=tuple(range(len(spacing_mm), mask.ndim)))
    box = []
    for axis, spacing in enumerate(spacing_mm):
        hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        if hit.size == 0:
            return None
        margin = crop.margin_voxels + (math.ceil(crop.margin_mm / spacing - 1e-9) if crop.margin_mm > 0 else 0)
        box.append(slice(max(int(hit[0]) - margin, 0), min(int(hit[-1]) + 1 + margin, mask.shape[axis])))
    return tuple(box)
