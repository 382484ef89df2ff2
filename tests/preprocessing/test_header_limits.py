"""Headers are checked before anything they declare is allocated: impossible Image Pixel
values, sizes over the limits, pixel data shorter than declared, unknown transfer syntaxes,
deep or huge headers; each refused with its typed error and a message naming tags, never values."""

from __future__ import annotations

import io
import struct

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from preprocessing import (
    InputTooLarge,
    InvalidDicom,
    MissingPixelData,
    UnsupportedTransferSyntax,
    configure_limits,
    current_limits,
    decode_frame,
    open_instance,
)


def _saved(ds: Dataset, *, implicit: bool = False) -> bytes:
    buffer = io.BytesIO()
    if implicit:
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


@pytest.fixture
def ct(real_file) -> Dataset:
    return real_file("pydicom", "CT_small.dcm").dataset()


@pytest.fixture
def limits():
    """``limits(**caps)``: process-wide limits for one test, restored after."""
    saved = current_limits()
    yield lambda **caps: configure_limits(**caps)
    configure_limits(saved)


@pytest.mark.parametrize(
    ("changes", "error", "pattern"),
    [
        ({"BitsStored": 0}, InvalidDicom, r"\(0028,0101\) Bits Stored must be between 1"),
        ({"BitsStored": 17}, InvalidDicom, r"\(0028,0101\) Bits Stored must be between 1"),
        ({"BitsAllocated": 12}, InvalidDicom, r"\(0028,0100\) Bits Allocated must be 1, 8, 16, 32 or 64"),
        ({"HighBit": 14}, InvalidDicom, r"\(0028,0102\) High Bit"),  # CT_small stores 16 bits: its high bit is 15
        ({"SamplesPerPixel": 4}, InvalidDicom, r"\(0028,0002\) Samples per Pixel must be 1 .* or 3"),  # retired ARGB/CMYK
        ({"PixelRepresentation": 2}, InvalidDicom, r"\(0028,0103\) Pixel Representation"),
        ({"Rows": 0}, InvalidDicom, r"\(0028,0010\) Rows.* must be >= 1"),
        ({"NumberOfFrames": 10**6}, InputTooLarge, r"\(0028,0008\) Number of Frames is 1000000, over the limit of 4096"),
        ({"NumberOfFrames": 10}, InvalidDicom, r"truncated: .* \(0028,0008\) Number of Frames need 327680 bytes"),
    ],
)
def test_impossible_or_oversized_image_pixel_modules_are_refused(ct, changes, error, pattern):
    for keyword, value in changes.items():
        setattr(ct, keyword, value)
    data = _saved(ct)
    with pytest.raises(error, match=pattern):
        open_instance(data)
    with pytest.raises(error, match=pattern):
        open_instance(pydicom.dcmread(io.BytesIO(data)))


def test_a_frame_over_the_pixel_limit_is_refused_before_reading_it(ct, limits):
    limits(max_pixels_per_frame=128 * 127)
    with pytest.raises(InputTooLarge, match=r"16384 values is over the limit of 16256"):
        open_instance(_saved(ct))


def test_encapsulated_frames_must_match_number_of_frames(real_file):
    ds = real_file("pydicom", "examples_ybr_color.dcm").dataset()  # 30 frames, 30 fragments, full offset table
    ds.NumberOfFrames = 40
    with pytest.raises(InvalidDicom, match=r"Number of Frames is 40 .* 30 fragments and 30 basic offset table entries"):
        open_instance(_saved(ds))


@pytest.mark.parametrize(
    "syntax",
    [
        "1.2.3.4.5",  # a private UID nobody registered as a transfer syntax
        "1.2.840.10008.5.1.4.1.1.2",  # CT Image Storage: a SOP class, not a transfer syntax
    ],
)
def test_an_unknown_transfer_syntax_is_unsupported(ct, syntax):
    data = bytearray(_saved(ct))
    ct_syntax = b"1.2.840.10008.1.2.1\0"
    at = data.index(ct_syntax)
    replaced = syntax.encode().ljust(len(ct_syntax), b"\0")[: len(ct_syntax)]
    data[at : at + len(ct_syntax)] = replaced
    with pytest.raises(UnsupportedTransferSyntax, match=r"not a DICOM transfer syntax this service knows"):
        open_instance(bytes(data))


def _nested_sequences(depth: int, *, implicit: bool, undefined_length: bool) -> bytes:
    """(0008,1140) *Referenced Image Sequence* nested ``depth`` times, each item holding the
    next, encoded by hand (pydicom itself writes and prints nested sequences recursively)."""
    tag = struct.pack("<HH", 0x0008, 0x1140)
    item_tag, item_end, sequence_end = b"\xfe\xff\x00\xe0", b"\xfe\xff\x0d\xe0", b"\xfe\xff\xdd\xe0"
    header = (lambda length: tag + struct.pack("<L", length)) if implicit else (
        lambda length: tag + b"SQ\0\0" + struct.pack("<L", length)
    )
    if undefined_length:
        opening = header(0xFFFFFFFF) + item_tag + struct.pack("<L", 0xFFFFFFFF)
        closing = item_end + b"\0\0\0\0" + sequence_end + b"\0\0\0\0"
        return opening * depth + closing * depth
    value = b""
    for _ in range(depth):
        item = item_tag + struct.pack("<L", len(value)) + value
        value = header(len(item)) + item
    return value


@pytest.mark.parametrize("implicit", [False, True])
@pytest.mark.parametrize("undefined_length", [False, True])
def test_sequences_nested_too_deep_are_refused_without_recursing(ct, implicit, undefined_length):
    """1,000 nested sequences make pydicom recurse past Python's limit; the walk counts first."""
    data = _saved(ct, implicit=implicit)
    at = data.index(struct.pack("<HH", 0x0010, 0x0010))  # before (0010,0010) Patient's Name
    nested = data[:at] + _nested_sequences(1000, implicit=implicit, undefined_length=undefined_length) + data[at:]
    with pytest.raises(InputTooLarge, match=r"nests sequences more than 32 deep"):
        open_instance(nested)


def test_a_header_with_too_many_elements_is_refused(ct, limits):
    limits(max_elements=200)
    ct.ReferencedImageSequence = Sequence([Dataset() for _ in range(300)])
    for item in ct.ReferencedImageSequence:
        item.ReferencedSOPInstanceUID = "1.2.3"
    with pytest.raises(InputTooLarge, match=r"more than 200 data elements"):
        open_instance(_saved(ct))


def test_an_element_longer_than_the_file_is_refused_without_allocating_its_length(ct):
    """A private OB element declaring 4 GB, 10 bytes before the end of the file."""
    import tracemalloc

    data = _saved(ct)
    at = data.index(struct.pack("<HH", 0x7FE0, 0x0010))  # before the pixel data
    liar = struct.pack("<HH", 0x0009, 0x1010) + b"OB\0\0" + struct.pack("<L", 0xFFFFFFF0) + b"A" * 10
    tracemalloc.start()
    try:
        with pytest.raises((InvalidDicom, MissingPixelData), match=r"could not be parsed|no \(7FE0,0010\) Pixel Data"):
            decode_frame(open_instance(data[:at] + liar))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20


def test_a_deflate_bomb_is_refused_before_pydicom_inflates_it() -> None:
    """Deflated Explicit VR Little Endian: 330 KB that pydicom would inflate whole, to 300 MB."""
    import io

    import pydicom
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    from devtools.testdata import pydicom_test_file
    from preprocessing import InputTooLarge, configure_limits, current_limits, open_instance

    ds = pydicom.dcmread(pydicom_test_file("CT_small.dcm"))
    ds.add_new(0x00091010, "LO", "bomb")
    ds.add_new(0x00091011, "OB", bytes(300 << 20))
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    assert len(buffer.getvalue()) < 1 << 20
    before = current_limits()
    configure_limits(max_inflated_bytes=64 << 20)
    try:
        with pytest.raises(InputTooLarge, match=r"inflates beyond 67108864 bytes"):
            open_instance(buffer.getvalue())
    finally:
        configure_limits(before)
