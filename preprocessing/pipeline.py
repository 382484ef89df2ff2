"""The 2D pipeline: one DICOM instance → one model-ready [C, H, W] array + what was applied.

Read top to bottom: check modality → decode → modality LUT → photometric → window → resize.
``prepare_slice`` is the array half of it, shared by training code so that a model is trained
on exactly what the gateway sends it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from .decode import decode_pixels
from .errors import InvalidDicom, ModalityMismatch
from .pixels import apply_window, invert_monochrome1, resolve_window, to_modality_values
from .resample import resize_2d
from .spec import PreprocessingSpec


@dataclass(frozen=True)
class PreparedInput:
    """A model input and a JSON-able record of the preprocessing applied to produce it."""

    array: np.ndarray
    applied: dict[str, Any] = field(default_factory=dict)


def check_modality(ds: Dataset, spec: PreprocessingSpec) -> str:
    modality = str(ds.get("Modality", "")).upper()
    if spec.modalities and modality not in spec.modalities:
        raise ModalityMismatch(
            f"this model takes {'/'.join(spec.modalities)} images; the instance's Modality is "
            f"{modality or 'missing'}"
        )
    return modality


def prepare_slice(
    values: np.ndarray, spec: PreprocessingSpec, ds: Dataset | None = None
) -> PreparedInput:
    """Window and resize one 2D image of modality values (HU for CT) into [1, H, W]."""
    applied: dict[str, Any] = {"input_shape": list(values.shape)}
    if spec.window is not None:
        center, width = resolve_window(spec.window, ds)
        values = apply_window(values, center, width, spec.window.function)
        applied["window"] = {
            "center": center,
            "width": width,
            "function": spec.window.function,
            "preset": spec.window.preset,
        }
    if spec.output_size is not None:
        values = resize_2d(values, spec.output_size)
        applied["resized_to"] = list(spec.output_size)
    array = np.ascontiguousarray(values[np.newaxis], dtype=spec.dtype)
    applied["output_shape"] = list(array.shape)
    return PreparedInput(array=array, applied=applied)


def preprocess_instance(ds: Dataset, spec: PreprocessingSpec) -> PreparedInput:
    """Full 2D path for a single-frame grayscale instance.

    Pixels are decoded before the modality is checked: a broken file is reported as broken
    whatever model it was sent to.
    """
    stored = decode_pixels(ds)
    modality = check_modality(ds, spec)
    if stored.ndim != 2:
        raise InvalidDicom(
            f"this model takes one single-frame grayscale image; the instance's pixel array has "
            f"shape {tuple(stored.shape)} ({int(ds.get('NumberOfFrames', 1) or 1)} frames, "
            f"{int(ds.get('SamplesPerPixel', 1))} samples per pixel)"
        )
    values = invert_monochrome1(to_modality_values(ds, stored), ds)
    prepared = prepare_slice(values, spec, ds)
    prepared.applied.update(
        {
            "modality": modality,
            "rescale_slope": float(ds.get("RescaleSlope", 1.0)),
            "rescale_intercept": float(ds.get("RescaleIntercept", 0.0)),
            "photometric_interpretation": str(ds.get("PhotometricInterpretation", "")),
            "transfer_syntax": str(ds.file_meta.TransferSyntaxUID),
        }
    )
    return prepared
