"""DICOM bytes → pydicom Dataset → stored pixel values.

Decoding is delegated to pydicom and its plugins (pylibjpeg, pyjpegls, gdcm); this module's
job is to turn their many failure modes into the typed errors of :mod:`preprocessing.errors`.
"""

from __future__ import annotations

import io
from typing import BinaryIO

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from .errors import InvalidDicom, MissingPixelData, UnsupportedTransferSyntax

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


def read_dataset(source: bytes | bytearray | memoryview | BinaryIO) -> Dataset:
    """Parse a DICOM Part 10 object (preamble + ``DICM``) from bytes or a binary stream.

    Raises :class:`InvalidDicom` for anything that is not readable DICOM.
    """
    stream = io.BytesIO(bytes(source)) if isinstance(source, (bytes, bytearray, memoryview)) else source
    try:
        ds = pydicom.dcmread(stream, force=False)
    except InvalidDicomError as exc:
        raise InvalidDicom(
            "the body is not a DICOM Part 10 file (no 128-byte preamble followed by 'DICM')"
        ) from exc
    except (EOFError, ValueError, KeyError, TypeError, OSError, OverflowError, NotImplementedError) as exc:
        raise InvalidDicom(f"the DICOM file could not be parsed: {type(exc).__name__}") from exc
    if "TransferSyntaxUID" not in getattr(ds, "file_meta", Dataset()):
        raise InvalidDicom("the DICOM file has no (0002,0010) Transfer Syntax UID in its file meta")
    return ds


def has_pixel_data(ds: Dataset) -> bool:
    return any(keyword in ds for keyword in _PIXEL_KEYWORDS)


def decode_pixels(ds: Dataset) -> np.ndarray:
    """Stored pixel values as pydicom decodes them: (rows, cols[, samples]) or (frames, ...).

    Raises :class:`MissingPixelData`, :class:`UnsupportedTransferSyntax` or
    :class:`InvalidDicom` (truncated or corrupt pixel data).
    """
    if not has_pixel_data(ds):
        raise MissingPixelData("the DICOM instance has no (7FE0,0010) Pixel Data to run a model on")
    syntax = ds.file_meta.TransferSyntaxUID
    try:
        return ds.pixel_array
    except NotImplementedError as exc:
        raise UnsupportedTransferSyntax(
            f"no installed decoder handles transfer syntax {syntax} ({syntax.name}); "
            "send it uncompressed or in a syntax listed by GET /v1/models/{name}"
        ) from exc
    except RuntimeError as exc:
        if "unable to decode" in str(exc).lower() or "no pixel data decoders" in str(exc).lower():
            if _any_decoder_available(syntax):
                raise InvalidDicom(f"the {syntax.name} pixel data is corrupt and could not be decoded") from exc
            raise UnsupportedTransferSyntax(
                f"no installed decoder handles transfer syntax {syntax} ({syntax.name})"
            ) from exc
        raise InvalidDicom(f"the pixel data could not be decoded: {exc}") from exc
    except (ValueError, KeyError, AttributeError, TypeError, EOFError, OSError) as exc:
        raise InvalidDicom(f"the pixel data is truncated or inconsistent with its header: {exc}") from exc


def _any_decoder_available(syntax: pydicom.uid.UID) -> bool:
    from pydicom.pixels import get_decoder

    try:
        return get_decoder(syntax).is_available
    except NotImplementedError:
        return False
