"""Pixel semantics: stored values → modality values (HU) → windowed intensities in [0, 1].

Each function is a pure step over arrays; pydicom's own LUT functions are reused where they
exist so that our values equal the reference implementation.
"""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut

from .spec import WindowSpec


def to_modality_values(ds: Dataset, stored: np.ndarray) -> np.ndarray:
    """Apply the Modality LUT: (0028,1053) *Rescale Slope* / (0028,1052) *Rescale Intercept*
    or the (0028,3000) *Modality LUT Sequence*. For CT the result is in Hounsfield units.

    Returns float32; datasets without a Modality LUT come back unchanged in value.
    """
    values = apply_modality_lut(stored, ds)
    return np.asarray(values, dtype=np.float32)


def dicom_window(ds: Dataset) -> tuple[float, float] | None:
    """The first (center, width) of (0028,1050) *Window Center* / (0028,1051) *Window Width*."""
    if "WindowCenter" not in ds or "WindowWidth" not in ds:
        return None
    center, width = ds.WindowCenter, ds.WindowWidth
    center = center[0] if not isinstance(center, (int, float)) else center
    width = width[0] if not isinstance(width, (int, float)) else width
    return float(center), float(width)


def apply_window(values: np.ndarray, center: float, width: float, function: str = "LINEAR") -> np.ndarray:
    """Map modality values onto [0, 1] with a VOI window (DICOM PS3.3 C.11.2.1.2).

    ``LINEAR`` uses the standard's (center - 0.5, width - 1) form, ``LINEAR_EXACT`` the
    exact one, ``SIGMOID`` the logistic curve. Output is float32 in [0, 1].
    """
    values = np.asarray(values, dtype=np.float32)
    if function == "SIGMOID":
        out = 1.0 / (1.0 + np.exp(-4.0 * (values - center) / width))
        return out.astype(np.float32)
    if function == "LINEAR_EXACT":
        low, span = center - width / 2.0, width
    else:
        if width < 1:
            raise ValueError("LINEAR window width must be >= 1")
        low, span = (center - 0.5) - (width - 1.0) / 2.0, width - 1.0
    out = (values - np.float32(low)) * np.float32(1.0 / span)
    return np.clip(out, 0.0, 1.0, out=out)


def resolve_window(spec: WindowSpec, ds: Dataset | None) -> tuple[float, float]:
    """(center, width) the spec asks for; ``from_dicom`` reads the instance's own window."""
    fixed = spec.resolve()
    if fixed is not None:
        return fixed
    from_instance = dicom_window(ds) if ds is not None else None
    if from_instance is None:
        from .errors import InvalidDicom

        raise InvalidDicom(
            "the model windows with the instance's own (0028,1050) Window Center / "
            "(0028,1051) Window Width, and this instance has none"
        )
    return from_instance


def invert_monochrome1(values: np.ndarray, ds: Dataset) -> np.ndarray:
    """MONOCHROME1 shows low values bright; flip so that bright means dense, as MONOCHROME2."""
    if ds.get("PhotometricInterpretation", "MONOCHROME2") != "MONOCHROME1":
        return values
    return (values.max() + values.min()) - values
