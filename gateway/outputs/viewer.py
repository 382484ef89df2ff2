"""``format=viewer``: a segmentation as a page shows it — every slice (or every k-th) as the
PNG ``format=png`` draws for it, shrunk to at most :data:`MAX_SIDE_PX`, with the labels'
colours, the measurements of ``format=json`` and the slice with the most foreground.

The work and the answer are bounded: at most :data:`MAX_SLICES` slices are drawn (more: every
``stride``-th, the answer says which), and at most :data:`MAX_PIXELS` pixels in all (a series of
many large slices is strided further), so one answer is at most a few tens of MB of JSON.
"""

from __future__ import annotations

import base64
import io
import math

import numpy as np
from PIL import Image

from ..schemas import MeasurementPublic, ViewerLabel, ViewerPublic, ViewerSlice
from .encoder import SEGMENTATION_TASKS, Answer, Binary, output_format
from .overlay import CLASS_COLOURS, mask_overlay_rgb
from .source_image import windowed_frame

#: The most slices one answer draws (a constant of the API: more are strided).
MAX_SLICES = 512
#: The longer side of a drawn slice, in pixels (larger slices are shrunk, keeping their aspect).
MAX_SIDE_PX = 512
#: The most pixels drawn for one answer, over all its slices (256 slices of 512 x 512).
MAX_PIXELS = 256 * 512 * 512


def class_colour_hex(value: int) -> str:
    """``#rrggbb`` of the colour class ``value`` (1, 2, ...) is drawn in (:data:`CLASS_COLOURS`)."""
    red, green, blue = (int(c) for c in CLASS_COLOURS[(value - 1) % len(CLASS_COLOURS)])
    return f"#{red:02x}{green:02x}{blue:02x}"


def drawn_size(rows: int, columns: int) -> tuple[int, int]:
    """(rows, columns) of a drawn slice: the source's, shrunk so that the longer side is at most
    :data:`MAX_SIDE_PX` (never enlarged)."""
    scale = min(1.0, MAX_SIDE_PX / max(rows, columns))
    return max(1, round(rows * scale)), max(1, round(columns * scale))


def slice_stride(slices: int, rows: int, columns: int) -> int:
    """The smallest k such that every k-th of ``slices`` slices fits :data:`MAX_SLICES` and,
    drawn at :func:`drawn_size`, :data:`MAX_PIXELS`."""
    drawn_rows, drawn_columns = drawn_size(rows, columns)
    most = max(1, min(MAX_SLICES, MAX_PIXELS // (drawn_rows * drawn_columns)))
    return max(1, math.ceil(slices / most))


def _png_base64(rgb: np.ndarray) -> str:
    image = Image.fromarray(rgb, mode="RGB")
    size = drawn_size(*rgb.shape[:2])
    if size != rgb.shape[:2]:
        image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


@output_format("viewer", "application/json", accept=(), tasks=SEGMENTATION_TASKS)
def encoder(answer: Answer) -> Binary:
    """every slice (at most 512, else every k-th) as base64 PNG with the coloured mask, the labels' colours, the measurements and the slice with most foreground"""
    card, result = answer.card, answer.result
    labels_map = result.labels_map
    slices, rows, columns = labels_map.shape
    stride = slice_stride(slices, rows, columns)
    foreground = (labels_map > 0).reshape(slices, -1).sum(axis=1)
    drawn = []
    for index in range(0, slices, stride):
        frame = result.frames[index]
        image = windowed_frame(card, frame.instance, frame.index, frame.header)
        rgb = mask_overlay_rgb(image, labels_map[index])
        drawn.append(ViewerSlice(index=index, png=_png_base64(rgb), foreground_voxels=int(foreground[index])))
    most = max(drawn, key=lambda s: s.foreground_voxels)  # the first of the largest; the first slice when none has any
    body = ViewerPublic(
        model=card.name,
        task=card.task,
        labels=[ViewerLabel(value=value, label=label, color=class_colour_hex(value)) for value, label in enumerate(result.labels) if value > 0],
        slices=drawn,
        default_slice=most.index if most.foreground_voxels else drawn[len(drawn) // 2].index,
        measurements=[MeasurementPublic(**vars(m)) for m in result.measurements],
        shape=[slices, rows, columns],
        stride=stride,
    )
    return Binary(body.model_dump_json().encode())
