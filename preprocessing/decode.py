"""DICOM bytes → pydicom Dataset → stored pixel values, a whole object or one frame at a time.

Compressed pixel data is decoded by pydicom and its plugins (pylibjpeg with libjpeg, openjpeg
and rle; pyjpegls; gdcm). Native (uncompressed) frames are read straight from where the bytes
already are — the Dataset's (7FE0,0010) *Pixel Data*, the request body, or the file — as a
zero-copy numpy view, so a series is never held twice in memory. Every failure of the
libraries underneath is converted to the typed errors of :mod:`preprocessing.errors` in one
place, :func:`_decoding_errors`, and messages never quote element values (they may be PHI).
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import get_decoder
from pydicom.pixels import pixel_array as pydicom_pixel_array
from pydicom.pixels.utils import get_expected_length
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian

from .attributes import header_value
from .errors import InvalidDicom, MissingPixelData, UnsupportedTransferSyntax
from .part10 import read_part10

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_PIXEL_DATA_TAG = 0x7FE00010
_UNDEFINED_LENGTH = 0xFFFFFFFF
_PARSE_ERRORS = (
    EOFError, ValueError, KeyError, TypeError, OSError, OverflowError, NotImplementedError,
    IndexError, AttributeError, struct.error, zlib.error,
)



def read_dataset(source: bytes | bytearray | memoryview | BinaryIO) -> Dataset:
    """Parse a DICOM Part 10 object (preamble + ``DICM``) from bytes or a binary stream.

    Raises :class:`InvalidDicom` for anything that is not readable DICOM.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        return _parse(io.BytesIO(data), stop_before_pixels=False, data=data)
    return _parse(source, stop_before_pixels=False)


def has_pixel_data(ds: Dataset) -> bool:
    return any(keyword in ds for keyword in _PIXEL_KEYWORDS)


@dataclass(frozen=True)
class PixelDescription:
    """The (0028,xxxx) *Image Pixel* module attributes that size and type the stored values."""

    rows: int
    columns: int
    samples_per_pixel: int
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    number_of_frames: int
    photometric_interpretation: str

    @property
    def frame_bytes(self) -> int:
        return self.rows * self.columns * self.samples_per_pixel * self.bits_allocated // 8

    @property
    def stored_dtype(self) -> np.dtype:
        kind = "i" if self.pixel_representation == 1 else "u"
        return np.dtype(f"{kind}{self.bits_allocated // 8}")


def describe_pixels(header: Dataset) -> PixelDescription:
    """Read and check the Image Pixel module; :class:`InvalidDicom` names a malformed tag."""
    values: dict[str, int] = {}
    for keyword, tag, default in (
        ("Rows", "(0028,0010)", None),
        ("Columns", "(0028,0011)", None),
        ("SamplesPerPixel", "(0028,0002)", 1),
        ("BitsAllocated", "(0028,0100)", None),
        ("BitsStored", "(0028,0101)", header_value(header, "BitsAllocated")),
        ("PixelRepresentation", "(0028,0103)", 0),
        ("NumberOfFrames", "(0028,0008)", 1),
    ):
        raw = header_value(header, keyword, default)
        try:
            values[keyword] = int(raw)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise InvalidDicom(f"the {tag} {_words(keyword)} element is missing or not an integer") from None
    if min(values["Rows"], values["Columns"], values["SamplesPerPixel"], values["NumberOfFrames"]) < 1:
        raise InvalidDicom("(0028,0010) Rows, (0028,0011) Columns and (0028,0008) Number of Frames must be >= 1")
    return PixelDescription(
        rows=values["Rows"],
        columns=values["Columns"],
        samples_per_pixel=values["SamplesPerPixel"],
        bits_allocated=values["BitsAllocated"],
        bits_stored=values["BitsStored"],
        pixel_representation=values["PixelRepresentation"],
        number_of_frames=values["NumberOfFrames"],
        photometric_interpretation=str(header_value(header, "PhotometricInterpretation", "")).strip(),
    )


@dataclass(frozen=True)
class _NativeFrames:
    """Where the native (uncompressed) frames of one instance lie: a buffer or a file, from an offset."""

    buffer: memoryview | None
    path: Path | None
    offset: int
    available: int
    dtype: np.dtype


@dataclass(frozen=True, eq=False)
class Instance:
    """One DICOM instance ready to decode frame by frame.

    ``header`` holds every element (for a Dataset source) or every element before the pixel
    data (for bytes and paths, read with ``stop_before_pixels``). Pixels stay where they are
    until :func:`decode_frame` asks for one frame.
    """

    header: Dataset
    pixels: PixelDescription
    _native: _NativeFrames | None

    @property
    def transfer_syntax(self) -> UID:
        return UID(self.header.file_meta.TransferSyntaxUID)

    @property
    def native_dtype(self) -> np.dtype | None:
        """dtype of frames read without a decoder (None when a decoder is needed)."""
        return None if self._native is None else self._native.dtype


#: What an instance can be read from: a parsed Dataset, the bytes of a Part 10 file, its path,
#: or an already opened :class:`Instance`.
InstanceSource = Union[Dataset, bytes, bytearray, memoryview, str, os.PathLike, Instance]


def open_instance(source: InstanceSource) -> Instance:
    """Read what is needed to decode ``source`` later, one frame at a time.

    Bytes and paths of uncompressed instances are read up to the pixel data only; the frames
    stay in the bytes or the file. Compressed (and deflated) ones are parsed whole, their
    pixel data being small, and decoded from the Dataset. Raises :class:`InvalidDicom`,
    :class:`MissingPixelData` (no (7FE0,0010) *Pixel Data*).
    """
    if isinstance(source, Instance):
        return source
    if isinstance(source, Dataset):
        return _instance_from_dataset(source)
    data = bytes(source) if isinstance(source, (bytes, bytearray, memoryview)) else None
    path = None if data is not None else Path(source)  # type: ignore[arg-type]
    try:
        stream: BinaryIO = io.BytesIO(data) if data is not None else path.open("rb")  # type: ignore[union-attr]
    except OSError as exc:
        raise InvalidDicom(f"the DICOM file could not be opened: {type(exc).__name__}") from exc
    with stream:
        header = _parse(stream, stop_before_pixels=True, data=data)
        syntax = UID(header.file_meta.TransferSyntaxUID)
        element = None if syntax == DeflatedExplicitVRLittleEndian else _pixel_element_header(stream, syntax)
        if element is not None and element[0] == "PixelData" and element[2] != _UNDEFINED_LENGTH:
            description = describe_pixels(header)
            if _reads_natively(syntax, description):
                _, offset, length = element
                size = len(data) if data is not None else path.stat().st_size  # type: ignore[union-attr]
                native = _NativeFrames(
                    buffer=memoryview(data) if data is not None else None,
                    path=path,
                    offset=offset,
                    available=min(length, size - offset),
                    dtype=_native_dtype(description, syntax),
                )
                return Instance(header=header, pixels=description, _native=native)
        stream.seek(0)
        return _instance_from_dataset(_parse(stream, stop_before_pixels=False))


def decode_pixels(ds: Dataset) -> np.ndarray:
    """Stored pixel values as pydicom decodes them: (rows, cols[, samples]) or (frames, ...).

    YCbCr data comes back as RGB. Raises :class:`MissingPixelData`,
    :class:`UnsupportedTransferSyntax` or :class:`InvalidDicom` (truncated or corrupt data).
    """
    if not has_pixel_data(ds):
        raise MissingPixelData("the DICOM instance has no (7FE0,0010) Pixel Data to run a model on")
    describe_pixels(ds)
    syntax = UID(ds.file_meta.TransferSyntaxUID)
    if "PixelData" in ds and not syntax.is_encapsulated:
        needed = get_expected_length(ds, unit="bytes")
        if len(ds.PixelData) < needed:
            raise InvalidDicom(
                f"the pixel data is truncated: {needed} bytes of (7FE0,0010) Pixel Data are needed "
                f"and the instance has {len(ds.PixelData)}"
            )
    with _decoding_errors(ds):
        return ds.pixel_array


def decode_frame(instance: Instance, index: int = 0, out: np.ndarray | None = None) -> np.ndarray:
    """Stored values of frame ``index`` (0-based): (rows, cols) or (rows, cols, 3) RGB.

    Native frames are a read-only view on the source bytes, or read from the file straight
    into ``out`` when given (same shape and dtype as :attr:`Instance.native_dtype`);
    compressed frames are decoded alone, so a multi-frame object is never decoded whole.
    """
    description = instance.pixels
    if not 0 <= index < description.number_of_frames:
        raise IndexError(f"frame {index} of {description.number_of_frames}")
    native = instance._native
    if native is None:
        with _decoding_errors(instance.header):
            decoded = pydicom_pixel_array(instance.header, index=index)
        if out is None:
            return decoded
        np.copyto(out, decoded, casting="unsafe")
        return out
    frame_bytes = description.frame_bytes
    start = index * frame_bytes
    if start + frame_bytes > native.available:
        raise InvalidDicom(
            f"the pixel data is truncated: frame {index + 1} needs {start + frame_bytes} bytes of "
            f"(7FE0,0010) Pixel Data and the instance has {native.available}"
        )
    count = description.rows * description.columns
    shape = (description.rows, description.columns)
    if native.buffer is not None:
        stored = np.frombuffer(native.buffer, dtype=native.dtype, count=count, offset=native.offset + start)
        stored = stored.reshape(shape)
        if out is not None:
            np.copyto(out, stored)
            stored = out
    else:
        stored = np.empty(shape, dtype=native.dtype) if out is None else out
        descriptor = os.open(native.path, os.O_RDONLY)  # type: ignore[arg-type]
        try:
            read = os.preadv(descriptor, [memoryview(stored).cast("B")], native.offset + start)
        finally:
            os.close(descriptor)
        if read < frame_bytes:
            raise InvalidDicom(f"the pixel data is truncated: frame {index + 1} could not be read whole")
    return _correct_unused_bits(stored, description)


def _instance_from_dataset(ds: Dataset) -> Instance:
    if not has_pixel_data(ds):
        raise MissingPixelData("the DICOM instance has no (7FE0,0010) Pixel Data to run a model on")
    if "TransferSyntaxUID" not in getattr(ds, "file_meta", Dataset()):
        raise InvalidDicom("the DICOM file has no (0002,0010) Transfer Syntax UID in its file meta")
    description = describe_pixels(ds)
    syntax = UID(ds.file_meta.TransferSyntaxUID)
    native = None
    if "PixelData" in ds and not syntax.is_encapsulated and _reads_natively(syntax, description):
        buffer = memoryview(ds.PixelData)
        native = _NativeFrames(
            buffer=buffer, path=None, offset=0, available=len(buffer), dtype=_native_dtype(description, syntax)
        )
    return Instance(header=ds, pixels=description, _native=native)


def _reads_natively(syntax: UID, description: PixelDescription) -> bool:
    """Frames that pydicom returns unchanged from the buffer, apart from unused-bit correction."""
    if syntax.is_encapsulated or description.samples_per_pixel != 1:
        return False
    if description.bits_allocated == 8:
        return syntax != ExplicitVRBigEndian  # pydicom byte-swaps 8-bit OW data in big endian
    return description.bits_allocated in (16, 32)


def _native_dtype(description: PixelDescription, syntax: UID) -> np.dtype:
    return description.stored_dtype.newbyteorder("<" if syntax.is_little_endian else ">")


def _correct_unused_bits(stored: np.ndarray, description: PixelDescription) -> np.ndarray:
    """Ignore the bits above (0028,0101) *Bits Stored* (PS3.5 8.1.1), as pydicom does: a shift
    up and back down masks unsigned values and sign-extends signed ones. It changes nothing
    when every value already lies in the Bits Stored range, which one min/max pass checks."""
    bits = description.bits_stored
    if description.bits_allocated <= bits:
        return stored
    if description.pixel_representation == 0:
        if int(stored.max()) < (1 << bits):
            return stored
    elif int(stored.min()) >= -(1 << (bits - 1)) and int(stored.max()) < (1 << (bits - 1)):
        return stored
    shift = description.bits_allocated - bits
    corrected = np.left_shift(stored, shift, out=stored if stored.flags.writeable else None)
    return np.right_shift(corrected, shift, out=corrected)


def _parse(stream: BinaryIO, *, stop_before_pixels: bool, data: bytes | None = None) -> Dataset:
    """Parse ``stream`` (whose bytes are ``data`` when given: then the common encodings are
    read by :func:`preprocessing.part10.read_part10`, the rest by pydicom), leaving the stream
    where reading stopped."""
    fast = None
    if data is not None:
        try:
            fast = read_part10(data, stop_before_pixels=stop_before_pixels, stream=stream)
        except _PARSE_ERRORS:
            fast = None  # pydicom reads it again and reports what is wrong
    if fast is not None:
        ds, end = fast
        stream.seek(end)
        return _checked(ds)
    try:
        ds = pydicom.dcmread(stream, force=False, stop_before_pixels=stop_before_pixels)
    except InvalidDicomError as exc:
        raise InvalidDicom(
            "the body is not a DICOM Part 10 file (no 128-byte preamble followed by 'DICM')"
        ) from exc
    except _PARSE_ERRORS as exc:
        raise InvalidDicom(f"the DICOM file could not be parsed: {type(exc).__name__}") from exc
    return _checked(ds)


def _checked(ds: Dataset) -> Dataset:
    if "TransferSyntaxUID" not in getattr(ds, "file_meta", Dataset()):
        raise InvalidDicom("the DICOM file has no (0002,0010) Transfer Syntax UID in its file meta")
    if len(ds) == 0:
        raise InvalidDicom("the DICOM file ends after its file meta information: it is truncated")
    return ds


def _pixel_element_header(stream: BinaryIO, syntax: UID) -> tuple[str, int, int] | None:
    """(keyword, value offset, value length) of the pixel data element at the stream's position.

    ``dcmread(stop_before_pixels=True)`` leaves the stream at the start of that element's tag,
    the position pydicom's own ``pixel_array(path)`` relies on.
    """
    endian = "<" if syntax.is_little_endian else ">"
    head = stream.read(8)
    if len(head) < 8:
        return None
    group, element = struct.unpack(f"{endian}HH", head[:4])
    tag = (group << 16) | element
    keyword = {0x7FE00008: "FloatPixelData", 0x7FE00009: "DoubleFloatPixelData", _PIXEL_DATA_TAG: "PixelData"}.get(tag)
    if keyword is None:
        return None
    if syntax.is_implicit_VR:
        (length,) = struct.unpack(f"{endian}L", head[4:8])
    else:
        extra = stream.read(4)
        if len(extra) < 4:
            raise InvalidDicom("the pixel data is truncated: the (7FE0,0010) element header is cut short")
        (length,) = struct.unpack(f"{endian}L", extra)
    return keyword, stream.tell(), length


@contextmanager
def _decoding_errors(header: Dataset) -> Iterator[None]:
    """The one place where pydicom's and its plugins' decoding failures become typed errors."""
    syntax = UID(header.file_meta.TransferSyntaxUID)
    try:
        yield
    except NotImplementedError as exc:
        raise UnsupportedTransferSyntax(
            f"no installed decoder handles transfer syntax {syntax} ({syntax.name}); "
            "send it uncompressed or in a syntax listed by GET /v1/models/{name}"
        ) from exc
    except RuntimeError as exc:
        if _any_decoder_available(syntax):
            raise InvalidDicom(
                f"the {syntax.name} pixel data is corrupt: every installed decoder rejected it; "
                "re-export the image, or send it uncompressed"
            ) from exc
        raise UnsupportedTransferSyntax(
            f"no installed decoder handles transfer syntax {syntax} ({syntax.name})"
        ) from exc
    except (ValueError, KeyError, AttributeError, TypeError, EOFError, OSError, IndexError) as exc:
        raise InvalidDicom(
            f"the pixel data is truncated or inconsistent with its header ({type(exc).__name__})"
        ) from exc


def _any_decoder_available(syntax: UID) -> bool:
    try:
        return get_decoder(syntax).is_available
    except NotImplementedError:
        return False


def _words(keyword: str) -> str:
    return "".join(f" {c}" if c.isupper() else c for c in keyword).strip()
