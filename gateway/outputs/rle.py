"""``format=rle``: the segmentation JSON plus each class mask as run lengths, in C
(row-major) order.

``counts`` alternate background and foreground run lengths, starting with background (a
leading 0 when the first voxel is foreground) — the uncompressed COCO convention, but in C
order. :func:`decode` is the exact inverse, for clients and tests.
"""

from __future__ import annotations

import numpy as np

from ..schemas import SegmentationPublic
from .encoder import SEGMENTATION_TASKS, Answer, output_format
from .json import segmentation_body


def encode(mask: np.ndarray) -> dict[str, object]:
    flat = np.ascontiguousarray(mask, dtype=bool).ravel()
    changes = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    boundaries = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(boundaries).tolist()
    if flat.size and flat[0]:
        counts = [0, *counts]
    return {"shape": list(mask.shape), "order": "C", "counts": counts}


def decode(encoded: dict[str, object]) -> np.ndarray:
    shape = tuple(encoded["shape"])  # type: ignore[arg-type]
    counts = np.asarray(encoded["counts"], dtype=np.int64)
    values = np.arange(len(counts)) % 2 == 1
    return np.repeat(values, counts).reshape(shape)


@output_format("rle", "application/json", accept=(), tasks=SEGMENTATION_TASKS)  # JSON's media type: only format= selects it
def encoder(answer: Answer) -> SegmentationPublic:
    """the JSON plus each class mask as run lengths (C order, background first)"""
    result = answer.result
    masks = {label: encode(result.labels_map == value) for value, label in enumerate(result.labels) if value > 0}
    return segmentation_body(answer, masks)
