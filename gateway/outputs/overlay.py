"""PNG images for a person to look at: the windowed image with a coloured mask or heatmap."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

#: RGB colours of classes 1, 2, ... (class 0 is background and stays uncoloured).
CLASS_COLOURS = np.array([[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48], [145, 30, 180]], dtype=np.float32)


def _grey_rgb(image01: np.ndarray) -> np.ndarray:
    grey = np.clip(image01, 0.0, 1.0) * 255.0
    return np.repeat(grey[..., None], 3, axis=-1)


def mask_overlay_png(image01: np.ndarray, labels_map: np.ndarray, alpha: float = 0.45) -> bytes:
    """``image01``: a 2D image in [0, 1] (already windowed); ``labels_map``: same shape, ints."""
    if image01.shape != labels_map.shape:
        raise ValueError(f"image {image01.shape} and mask {labels_map.shape} differ in shape")
    rgb = _grey_rgb(image01)
    for value in range(1, int(labels_map.max(initial=0)) + 1):
        where = labels_map == value
        rgb[where] = (1 - alpha) * rgb[where] + alpha * CLASS_COLOURS[(value - 1) % len(CLASS_COLOURS)]
    return _png(rgb)


def heatmap_overlay_png(image01: np.ndarray, heat01: np.ndarray, alpha: float = 0.5) -> bytes:
    """A class-activation heatmap in [0, 1] over the image, blue (cold) to red (hot)."""
    if image01.shape != heat01.shape:
        raise ValueError(f"image {image01.shape} and heatmap {heat01.shape} differ in shape")
    heat = np.clip(heat01, 0.0, 1.0)[..., None]
    colour = np.concatenate([heat, 1.0 - np.abs(heat * 2 - 1), 1.0 - heat], axis=-1) * 255.0
    weight = alpha * heat
    return _png((1 - weight) * _grey_rgb(image01) + weight * colour)


def _png(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), mode="RGB").save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()
