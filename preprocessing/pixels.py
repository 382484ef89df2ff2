"""Pixel semantics: stored values → modality values (HU) → windowed intensities in [0, 1].

Each function is a pure step over arrays. pydicom's own LUT functions (``apply_modality_lut``,
``apply_voi_lut``, ``apply_color_lut``) are reused so that our values equal the reference
implementation; the explicit-window path has its own float32 implementation because it runs
on whole volumes, where pydicom's float64 copies would triple the memory, and the tests hold
it equal to pydicom's ``apply_windowing``.
"""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut

from .attributes import header_value
from .errors import InvalidDicom
from .spec import WindowSpec

MONOCHROME = ("MONOCHROME1", "MONOCHROME2")


def to_modality_values(ds: Dataset, stored: np.ndarray) -> np.ndarray:
    """Apply the Modality LUT: (0028,1053) *Rescale Slope* / (0028,1052) *Rescale Intercept*
    or the (0028,3000) *Modality LUT Sequence*. For CT the result is in Hounsfield units.

    Returns float32; datasets without a Modality LUT come back unchanged in value.

    The usual CT case (integer stored values, integer slope and intercept) is computed in
    float32 directly — exact, as every intermediate is an integer below 2**24 — instead of
    pydicom's float64 pass and a conversion: the same values in a third of the time.
    """
    rescale = linear_rescale(ds) if stored.dtype.kind in "iu" and stored.dtype.itemsize <= 2 else None
    if rescale is not None and all(float(v).is_integer() for v in rescale):
        slope, intercept = rescale
        if abs(slope) * 65536 + abs(intercept) < 2**24:
            values = stored.astype(np.float32)
            if slope != 1:
                values *= np.float32(slope)
            if intercept:
                values += np.float32(intercept)
            return values
    values = apply_modality_lut(stored, ds)
    return np.asarray(values, dtype=np.float32)


def linear_rescale(ds: Dataset) -> tuple[float, float] | None:
    """(slope, intercept) when the Modality LUT is linear — (0028,1053) / (0028,1052), or
    (1, 0) without either, as pydicom's ``apply_modality_lut`` reads them — and None when a
    (0028,3000) *Modality LUT Sequence* maps values through a table.

    A linear Modality LUT commutes with linear interpolation, so a volume can be resampled on
    stored values and rescaled afterwards, on far fewer voxels.
    """
    if ds.get("ModalityLUTSequence"):
        return None
    slope, intercept = header_value(ds, "RescaleSlope"), header_value(ds, "RescaleIntercept")
    if slope is not None and intercept is not None:
        try:
            return float(slope), float(intercept)
        except (TypeError, ValueError):
            raise InvalidDicom("(0028,1053) Rescale Slope or (0028,1052) Rescale Intercept is not a number") from None
    return 1.0, 0.0


def padding_mask(ds: Dataset, stored: np.ndarray) -> np.ndarray | None:
    """Pixels outside the image proper: stored values equal to (0028,0120) *Pixel Padding
    Value*, or between it and (0028,0121) *Pixel Padding Range Limit* (PS3.3 C.7.5.1.1.2).

    None when the instance declares no padding or no pixel is padding.
    """
    if "PixelPaddingValue" not in ds or ds.PixelPaddingValue is None:
        return None
    value = int(ds.PixelPaddingValue)
    limit = ds.get("PixelPaddingRangeLimit")
    if limit is None:
        mask = stored == value
    else:
        low, high = sorted((value, int(limit)))
        mask = (stored >= low) & (stored <= high)
    return mask if mask.any() else None


def fill_padding(values: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """Give padding pixels the lowest modality value of the image proper (in place), so that
    padding (e.g. -3024 HU outside a CT's reconstruction circle) neither drags interpolation
    nor normalization statistics. Returns ``values``."""
    if mask is None or mask.all():
        return values
    lowest = np.min(values, where=~mask, initial=np.inf)  # no boolean-indexed copy of the image
    np.copyto(values, values.dtype.type(lowest), where=mask)
    return values


def dicom_window(ds: Dataset, index: int = 0) -> tuple[float, float] | None:
    """View ``index`` of (0028,1050) *Window Center* / (0028,1051) *Window Width* (both may be
    multi-valued), or None when the instance has no window or fewer views."""
    if "WindowCenter" not in ds or "WindowWidth" not in ds:
        return None
    centers, widths = _as_list(ds.WindowCenter), _as_list(ds.WindowWidth)
    if index >= min(len(centers), len(widths)):
        return None
    return float(centers[index]), float(widths[index])


def apply_window(
    values: np.ndarray, center: float, width: float, function: str = "LINEAR", *, out: np.ndarray | None = None
) -> np.ndarray:
    """Map modality values onto [0, 1] with a VOI window (DICOM PS3.3 C.11.2.1.2).

    ``LINEAR`` uses the standard's (center - 0.5, width - 1) form, ``LINEAR_EXACT`` the
    exact one, ``SIGMOID`` the logistic curve. Output is float32 in [0, 1]; pass ``out=values``
    to work in place on a float32 volume.
    """
    values = np.asarray(values, dtype=np.float32)
    if out is None:
        out = np.empty_like(values)
    if function == "SIGMOID":
        window = _sigmoid_window(center, width)
    elif function == "LINEAR_EXACT":
        window = _linear_window(center - width / 2.0, width)
    else:
        if width < 1:
            raise ValueError("LINEAR window width must be >= 1")
        window = _linear_window((center - 0.5) - (width - 1.0) / 2.0, width - 1.0)
    if values.flags.c_contiguous and out.flags.c_contiguous and values.size > _WINDOW_CHUNK:
        flat_values, flat_out = values.reshape(-1), out.reshape(-1)
        for start in range(0, flat_values.size, _WINDOW_CHUNK):
            window(flat_values[start : start + _WINDOW_CHUNK], flat_out[start : start + _WINDOW_CHUNK])
    else:
        window(values, out)
    return out


#: Values a window's passes run over at a time (128 KiB of float32): all its passes then run
#: in the CPU cache and memory is read and written once, 1.3x faster on a CT volume than
#: each pass over the whole volume (elementwise: the same values).
_WINDOW_CHUNK = 1 << 15


def _linear_window(low: float, span: float):
    """``clamp((v - low) / span, 0, 1)`` from ``values`` into ``out``; the clamp as maximum
    then minimum (NaN stays NaN, as with np.clip): branch-free SIMD loops, 2.5x faster than
    np.clip's on a CT volume with a few percent of values outside."""

    def window(values: np.ndarray, out: np.ndarray) -> None:
        np.subtract(values, np.float32(low), out=out)
        out *= np.float32(1.0 / span)
        np.maximum(out, np.float32(0.0), out=out)
        np.minimum(out, np.float32(1.0), out=out)

    return window


def _sigmoid_window(center: float, width: float):
    """``1 / (1 + exp(-4 (v - center) / width))`` from ``values`` into ``out``."""

    def window(values: np.ndarray, out: np.ndarray) -> None:
        np.subtract(values, np.float32(center), out=out)
        out *= np.float32(-4.0 / width)
        with np.errstate(over="ignore"):  # per thread: set where the pass runs
            np.exp(out, out=out)
        out += np.float32(1.0)
        np.reciprocal(out, out=out)

    return window


def apply_dicom_voi(values: np.ndarray, ds: Dataset, index: int = 0) -> np.ndarray:
    """The instance's own VOI LUT module, as pydicom's ``apply_voi_lut`` applies it — the
    (0028,3010) *VOI LUT Sequence* if present, else the window with (0028,1056) *VOI LUT
    Function* — rescaled from its output range onto [0, 1] (float32)."""
    if ds.get("VOILUTSequence"):
        if index >= len(ds.VOILUTSequence):
            raise InvalidDicom(f"the instance has no VOI LUT number {index + 1} in (0028,3010) VOI LUT Sequence")
        depth = int(ds.VOILUTSequence[index].LUTDescriptor[2])
        low, high = 0.0, float(2**depth - 1)
        values = np.rint(values).astype(np.int64)
    else:
        if dicom_window(ds, index) is None:
            raise InvalidDicom(
                "the model windows with the instance's own (0028,1050) Window Center / "
                f"(0028,1051) Window Width (view {index + 1}), and this instance has none"
            )
        low, high = voi_output_range(ds)
    try:
        mapped = apply_voi_lut(values, ds, index=index)
    except (ValueError, TypeError, IndexError, KeyError, AttributeError) as exc:
        # pydicom's message may quote the header's values: only its type goes out
        raise InvalidDicom(f"the instance's (0028,3010) VOI LUT cannot be applied ({type(exc).__name__})") from None
    out = np.asarray(mapped, dtype=np.float64)
    out -= low
    out /= high - low
    return out.astype(np.float32)


def voi_output_range(ds: Dataset) -> tuple[float, float]:
    """(y_min, y_max) of pydicom's ``apply_windowing``: the range of the Modality LUT output,
    from (0028,0101) *Bits Stored* and (0028,0103) *Pixel Representation* through the rescale."""
    bits = int(ds.BitsStored)
    if ds.get("ModalityLUTSequence"):
        return 0.0, float(2 ** int(ds.ModalityLUTSequence[0].LUTDescriptor[2]) - 1)
    if int(ds.get("PixelRepresentation", 0)) == 0:
        low, high = 0.0, float(2**bits - 1)
    else:
        low, high = float(-(2 ** (bits - 1))), float(2 ** (bits - 1) - 1)
    slope, intercept = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
    if slope is not None and intercept is not None:
        low, high = low * float(slope) + float(intercept), high * float(slope) + float(intercept)
    return low, high


def resolve_window(spec: WindowSpec, ds: Dataset | None) -> tuple[float, float]:
    """(center, width) the spec asks for; ``from_dicom`` reads the instance's own window."""
    fixed = spec.resolve()
    if fixed is not None:
        return fixed
    from_instance = dicom_window(ds, spec.voi_index) if ds is not None else None
    if from_instance is None:
        raise InvalidDicom(
            "the model windows with the instance's own (0028,1050) Window Center / "
            f"(0028,1051) Window Width (view {spec.voi_index + 1}), and this instance has none"
        )
    return from_instance


def invert_monochrome1(values: np.ndarray, ds: Dataset) -> np.ndarray:
    """MONOCHROME1 shows low values bright; flip so that bright means dense, as MONOCHROME2.

    For unwindowed modality values: the image's own range is mirrored onto itself."""
    if not is_monochrome1(ds):
        return values
    return (values.max() + values.min()) - values


def invert_windowed_monochrome1(windowed: np.ndarray, ds: Dataset) -> np.ndarray:
    """The same flip after a VOI window: the window is defined on the stored sense of the
    values (PS3.3 C.11.2.1.2), so MONOCHROME1 inverts its [0, 1] output (in place)."""
    if not is_monochrome1(ds):
        return windowed
    np.subtract(np.float32(1.0), windowed, out=windowed)
    return windowed


def is_monochrome1(ds: Dataset) -> bool:
    return str(header_value(ds, "PhotometricInterpretation", "MONOCHROME2")).strip() == "MONOCHROME1"


def is_color(ds: Dataset) -> bool:
    """Whether the instance decodes to RGB: PALETTE COLOR, RGB or any YBR interpretation."""
    return str(header_value(ds, "PhotometricInterpretation", "MONOCHROME2")).strip() not in MONOCHROME


def to_rgb(stored: np.ndarray, ds: Dataset) -> np.ndarray:
    """RGB values of a color frame: (0028,1201)… *Palette Color Lookup Tables* applied with
    pydicom's ``apply_color_lut`` for PALETTE COLOR; RGB and YBR frames are already RGB, since
    pydicom converts YCbCr to RGB when it decodes."""
    if str(ds.get("PhotometricInterpretation", "")).strip() == "PALETTE COLOR":
        try:
            return apply_color_lut(stored, ds)
        except (ValueError, KeyError, AttributeError, IndexError) as exc:
            raise InvalidDicom(
                f"the PALETTE COLOR lookup tables (0028,1101)-(0028,1203) are malformed ({type(exc).__name__})"
            ) from exc
    return stored


def _as_list(value: object) -> list:
    return list(value) if isinstance(value, (list, tuple, MultiValue)) else [value]
