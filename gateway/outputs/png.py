"""``format=png``: one slice of the source, windowed, with the coloured mask over it."""

from __future__ import annotations

import numpy as np

from .encoder import SEGMENTATION_TASKS, Answer, Binary, output_format
from .overlay import mask_overlay_rgb, png_bytes
from .source_image import windowed_frame


def overlay_slice_index(labels_map: np.ndarray, requested: int | None) -> int:
    """The requested slice of a [D, H, W] label map, or the one with the most foreground
    (the middle one if there is none)."""
    if requested is not None:
        return requested
    areas = (labels_map > 0).reshape(len(labels_map), -1).sum(axis=1)
    return int(np.argmax(areas)) if areas.any() else len(areas) // 2


def overlay_slice(answer: Answer) -> tuple[int, np.ndarray]:
    """The slice a picture of a segmentation shows (:func:`overlay_slice_index`) and its
    [rows, cols, 3] uint8 pixels: the windowed source with the coloured mask over it — the
    pixels of both ``format=png`` and ``format=sc``."""
    result = answer.result
    index = overlay_slice_index(result.labels_map, answer.slice_index)
    frame = result.frames[index]
    image = windowed_frame(answer.card, frame.instance, frame.index, frame.header)
    return index, mask_overlay_rgb(image, result.labels_map[index])


@output_format("png", "image/png", tasks=SEGMENTATION_TASKS)
def encoder(answer: Answer) -> Binary:
    """windowed slice with the coloured mask (`slice=` picks one; default: most foreground)"""
    index, rgb = overlay_slice(answer)
    return Binary(png_bytes(rgb), {"X-Slice-Index": str(index)})
