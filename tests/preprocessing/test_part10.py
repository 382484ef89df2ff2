"""The fast Part 10 header reader builds exactly what pydicom's dcmread builds, or declines."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest

from devtools.dicomgen import ct_dataset
from preprocessing.part10 import read_part10


def _same_as_pydicom(data: bytes, stop_before_pixels: bool) -> bool:
    """True when the fast reader took the file (and then equals dcmread), False when it declined."""
    fast = read_part10(data, stop_before_pixels=stop_before_pixels)
    if fast is None:
        return False
    ours, end = fast
    stream = io.BytesIO(data)
    reference = pydicom.dcmread(stream, stop_before_pixels=stop_before_pixels)
    assert end == stream.tell()
    assert ours.preamble == reference.preamble
    assert dict(ours.file_meta._dict) == dict(reference.file_meta._dict)
    assert dict(ours._dict) == dict(reference._dict)  # RawDataElement tuples: VR, length, bytes, offset, encoding
    assert ours.original_encoding == reference.original_encoding
    assert ours._character_set == reference._character_set
    assert ours.file_meta.original_encoding == reference.file_meta.original_encoding
    for element in reference:  # converted values too, sequences included
        assert ours[element.tag].value == element.value
    return True


@pytest.mark.parametrize("stop_before_pixels", [True, False])
def test_equal_to_dcmread_on_every_real_image_it_takes(real_images, stop_before_pixels) -> None:
    taken = [image for image in real_images if _same_as_pydicom(image.data, stop_before_pixels)]
    assert len(taken) > len(real_images) // 3  # the common encodings are most real files


def test_takes_a_generated_ct_slice_with_its_charset_and_sequences() -> None:
    ds = ct_dataset(np.zeros((8, 8), np.int16), pixel_spacing_mm=(0.7, 0.7))
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.InstitutionName = "Klinik Düsseldorf"
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    assert _same_as_pydicom(buffer.getvalue(), stop_before_pixels=True)
    assert _same_as_pydicom(buffer.getvalue(), stop_before_pixels=False)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not dicom at all" * 20,
        b"\0" * 128 + b"DICM",  # a preamble and nothing else
        b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\x40\x00",  # a value running past the end
    ],
)
def test_declines_what_pydicom_must_judge(data: bytes) -> None:
    assert read_part10(data, stop_before_pixels=True) is None


def test_declines_big_endian_and_undefined_lengths(real_file) -> None:
    assert read_part10(real_file("pydicom", "MR_small_bigendian.dcm").data, stop_before_pixels=True) is None
    jpeg = real_file("pydicom", "JPEG2000.dcm").data  # encapsulated pixel data: undefined length
    assert read_part10(jpeg, stop_before_pixels=False) is None


def test_file_meta_of_one_header_is_its_own() -> None:
    """Instances of a series share their file meta bytes; a change to one parsed header's
    file meta changes no other header read before or after it."""
    buffer = io.BytesIO()
    ct_dataset(np.zeros((8, 8), np.int16), pixel_spacing_mm=(0.7, 0.7)).save_as(buffer, enforce_file_format=True)
    first, _ = read_part10(buffer.getvalue(), stop_before_pixels=True)
    second, _ = read_part10(buffer.getvalue(), stop_before_pixels=True)
    syntax = first.file_meta.TransferSyntaxUID
    first.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2"
    third, _ = read_part10(buffer.getvalue(), stop_before_pixels=True)
    assert second.file_meta.TransferSyntaxUID == third.file_meta.TransferSyntaxUID == syntax != "1.2.840.10008.1.2"
    assert _same_as_pydicom(buffer.getvalue(), stop_before_pixels=True)
