"""Instances opened from a path: the header is what ``dcmread`` reads from that file — up to
the pixel data for native pixels, whether the header ends within the first bytes read in one
pass or after them; whole for compressed and deflated ones — and the frames are pydicom's,
read from the file; opened from bytes, native frames are views on them."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from devtools.dicomgen import ct_dataset
from preprocessing import decode_frame, open_instance
from preprocessing.decode import _HEAD_BYTES


def _same_header(ours: pydicom.Dataset, path) -> None:
    reference = pydicom.dcmread(path, stop_before_pixels="PixelData" not in ours)
    assert ours.preamble == reference.preamble
    assert ours.file_meta == reference.file_meta
    assert ours == reference  # every element, converted, sequences included
    assert ours.filename == reference.filename


def test_every_real_image_has_the_header_dcmread_reads(real_images, tmp_path) -> None:
    for image in real_images:
        path = tmp_path / f"{image}.dcm"
        path.write_bytes(image.data)
        _same_header(open_instance(path).header, path)


@pytest.mark.parametrize("private_bytes", [0, _HEAD_BYTES], ids=["short header", "header past the head"])
def test_a_ct_slice_has_its_header_and_pixels(private_bytes: int, tmp_path) -> None:
    hu = np.random.default_rng(3).integers(-1024, 2000, size=(64, 48)).astype(np.float32)
    ds = ct_dataset(hu, pixel_spacing_mm=(0.7, 0.7))
    if private_bytes:
        block = ds.private_block(0x0011, "MEDSERVE TEST", create=True)
        block.add_new(0x01, "OB", bytes(private_bytes))
    path = tmp_path / "slice.dcm"
    ds.save_as(path, enforce_file_format=True)
    instance = open_instance(path)
    _same_header(instance.header, path)
    np.testing.assert_array_equal(decode_frame(instance), pydicom.dcmread(path).pixel_array)


def test_frames_of_bytes_are_views_and_frames_of_a_file_are_read(tmp_path) -> None:
    hu = np.random.default_rng(5).integers(-1024, 2000, size=(32, 40)).astype(np.float32)
    path = tmp_path / "slice.dcm"
    ct_dataset(hu, pixel_spacing_mm=(0.7, 0.7)).save_as(path, enforce_file_format=True)
    from_bytes, from_file = open_instance(path.read_bytes()), open_instance(path)
    assert from_bytes.frames_in_memory and not from_file.frames_in_memory
    view = decode_frame(from_bytes)
    assert not view.flags.writeable and not view.flags.owndata  # on the uploaded bytes, no copy
    np.testing.assert_array_equal(view, decode_frame(from_file))


def test_a_pixel_data_element_header_cut_by_the_end_of_the_first_read(tmp_path) -> None:
    """The (7FE0,0010) tag within the head, its length after it: read on from the file."""
    hu = np.random.default_rng(4).integers(-1024, 2000, size=(16, 16)).astype(np.float32)
    ds = ct_dataset(hu, pixel_spacing_mm=(0.7, 0.7))
    block = ds.private_block(0x0011, "MEDSERVE TEST", create=True)
    block.add_new(0x01, "OB", b"")
    path = tmp_path / "slice.dcm"
    ds.save_as(path, enforce_file_format=True)
    element_start = path.read_bytes().rindex(b"\xe0\x7f\x10\x00")  # the (7FE0,0010) tag, little endian
    padding = _HEAD_BYTES - 6 - element_start
    block[0x01].value = bytes(padding + padding % 2)  # even lengths only: 6 or 7 bytes before the end
    ds.save_as(path, enforce_file_format=True)
    assert _HEAD_BYTES - 12 < path.read_bytes().rindex(b"\xe0\x7f\x10\x00") < _HEAD_BYTES - 4
    instance = open_instance(path)
    _same_header(instance.header, path)
    np.testing.assert_array_equal(decode_frame(instance), pydicom.dcmread(path).pixel_array)
