"""Images for a person to look at: the windowed image with a coloured mask or heatmap.

One blending for every picture the gateway draws: :func:`mask_overlay_rgb` and
:func:`heatmap_overlay_rgb` give the 8-bit RGB pixels, which ``format=png`` / ``heatmap`` write
as PNG and ``format=sc`` as a DICOM Secondary Capture, so both show the same pixels.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

#: RGB colours of classes 1, 2, ... (class 0 is background and stays uncoloured); after the
#: last, the colours repeat.
CLASS_COLOURS = np.array([[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48], [145, 30, 180]], dtype=np.float32)
#: The names of :data:`CLASS_COLOURS`, for legends.
CLASS_COLOUR_NAMES = ("red", "green", "yellow", "blue", "orange", "purple")


def class_colour_name(value: int) -> str:
    """The name of the colour that class ``value`` (1, 2, ...) is drawn in."""
    return CLASS_COLOUR_NAMES[(value - 1) % len(CLASS_COLOUR_NAMES)]


def _grey_rgb(image01: np.ndarray) -> np.ndarray:
    grey = np.clip(image01, 0.0, 1.0) * 255.0
    return np.repeat(grey[..., None], 3, axis=-1)


def _to_uint8(rgb: np.ndarray) -> np.ndarray:
    return np.clip(rgb, 0, 255).astype(np.uint8)  # truncated, not rounded: what the PNGs always had


def mask_overlay_rgb(image01: np.ndarray, labels_map: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """[rows, cols, 3] uint8: ``image01`` (a 2D image in [0, 1], already windowed) in grey,
    each class ``k > 0`` of ``labels_map`` (same shape, ints) blended with its colour:
    ``(1 - alpha) * grey + alpha * colour``."""
    if image01.shape != labels_map.shape:
        raise ValueError(f"image {image01.shape} and mask {labels_map.shape} differ in shape")
    rgb = _grey_rgb(image01)
    for value in range(1, int(labels_map.max(initial=0)) + 1):
        where = labels_map == value
        rgb[where] = (1 - alpha) * rgb[where] + alpha * CLASS_COLOURS[(value - 1) % len(CLASS_COLOURS)]
    return _to_uint8(rgb)


def heatmap_overlay_rgb(image01: np.ndarray, heat01: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """[rows, cols, 3] uint8: a class-activation heatmap in [0, 1] over the image, blue (cold)
    to red (hot), weighted by its heat."""
    if image01.shape != heat01.shape:
        raise ValueError(f"image {image01.shape} and heatmap {heat01.shape} differ in shape")
    heat = np.clip(heat01, 0.0, 1.0)[..., None]
    colour = np.concatenate([heat, 1.0 - np.abs(heat * 2 - 1), 1.0 - heat], axis=-1) * 255.0
    weight = alpha * heat
    return _to_uint8((1 - weight) * _grey_rgb(image01) + weight * colour)


def mask_overlay_png(image01: np.ndarray, labels_map: np.ndarray, alpha: float = 0.45) -> bytes:
    """:func:`mask_overlay_rgb` as PNG bytes."""
    return png_bytes(mask_overlay_rgb(image01, labels_map, alpha))


def heatmap_overlay_png(image01: np.ndarray, heat01: np.ndarray, alpha: float = 0.5) -> bytes:
    """:func:`heatmap_overlay_rgb` as PNG bytes."""
    return png_bytes(heatmap_overlay_rgb(image01, heat01, alpha))


def png_bytes(rgb: np.ndarray) -> bytes:
    """[rows, cols, 3] uint8 pixels as a PNG (lossless: decoding gives the same pixels)."""
    buffer = io.BytesIO()
    Image.fromarray(rgb, mode="RGB").save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()
