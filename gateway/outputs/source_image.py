"""The source image as a person should see it under an overlay: windowed into [0, 1]."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from pydicom.dataset import Dataset

from preprocessing import Instance, decode_frame
from preprocessing.pixels import apply_window, resolve_window, to_modality_values

from ..errors import OutputUnavailable

if TYPE_CHECKING:
    from ..catalog import ModelCard


def windowed_frame(card: ModelCard, instance: Instance, frame_index: int = 0, header: Dataset | None = None) -> np.ndarray:
    """Frame ``frame_index`` of the source in [0, 1] (``header``: that frame's flattened
    header, for a multi-frame instance): the model's window when it has one, else the
    1st–99th percentile range, so that a person sees what the model saw."""
    if instance.pixels.samples_per_pixel != 1:
        raise OutputUnavailable("an overlay is drawn on a grayscale image; this source is colour: ask for format=json or nifti")
    ds = header if header is not None else instance.header
    values = to_modality_values(ds, decode_frame(instance, frame_index))
    if card.preprocessing.window is not None:
        center, width = resolve_window(card.preprocessing.window, ds)
        return apply_window(values, center, width)
    low, high = np.percentile(values, [1, 99])
    return np.clip((values - low) / max(high - low, 1e-6), 0, 1)
