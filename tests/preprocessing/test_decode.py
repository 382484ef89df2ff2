"""Decoding: every real file, every transfer syntax, frame by frame, equal to pydicom; broken
files raise typed errors with messages a sender can act on."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from pydicom.pixels import pixel_array as pydicom_pixel_array
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    MPEG2MPML,
    RLELossless,
)

from preprocessing import (
    InvalidDicom,
    UnsupportedTransferSyntax,
    decode_frame,
    decode_pixels,
    open_instance,
    read_dataset,
)

#: Frames compared per multi-frame file; long cine loops are sampled at both ends and the middle.
_MAX_FRAMES_COMPARED = 12


def _frames_to_compare(count: int) -> list[int]:
    if count <= _MAX_FRAMES_COMPARED:
        return list(range(count))
    return [0, count // 2, count - 1]


def _reference_frame(ds: pydicom.Dataset, index: int, count: int) -> np.ndarray:
    """pydicom's own decoding of one frame."""
    if count > _MAX_FRAMES_COMPARED:
        return pydicom_pixel_array(ds, index=index)
    array = ds.pixel_array
    return array[index] if count > 1 else array


class TestDecodeFrame:
    def test_equals_pydicom_on_every_real_image(self, real_image):
        instance = open_instance(real_image.data)
        reference = real_image.dataset()
        count = instance.pixels.number_of_frames
        for index in _frames_to_compare(count):
            ours = decode_frame(instance, index)
            expected = _reference_frame(reference, index, count)
            assert ours.shape == expected.shape
            assert ours.dtype.kind == expected.dtype.kind and ours.dtype.itemsize == expected.dtype.itemsize
            np.testing.assert_array_equal(ours, expected)

    @pytest.mark.parametrize(
        ("source", "name"),
        [
            ("pydicom", "CT_small.dcm"),  # explicit VR LE, int16
            ("pydicom", "MR_small_implicit.dcm"),  # implicit VR LE
            ("pydicom", "MR_small_bigendian.dcm"),  # explicit VR big endian
            ("pydicom-data", "emri_small.dcm"),  # 10 native frames
            ("pydicom", "rtdose.dcm"),  # uint32 frames
            ("pydicom", "image_dfl.dcm"),  # deflated: read whole, decoded from the Dataset
            ("pydicom-data", "emri_small_jpeg_ls_lossless.dcm"),  # compressed frames decoded one at a time
        ],
    )
    def test_dataset_bytes_and_path_sources_agree(self, real_file, source, name):
        image = real_file(source, name)
        from_bytes = open_instance(image.data)
        from_path = open_instance(image.path)
        from_dataset = open_instance(read_dataset(image.data))
        for index in range(from_bytes.pixels.number_of_frames):
            expected = decode_frame(from_dataset, index)
            np.testing.assert_array_equal(decode_frame(from_bytes, index), expected)
            np.testing.assert_array_equal(decode_frame(from_path, index), expected)

    def test_native_frame_is_a_view_on_the_pixel_data(self, real_file):
        ds = read_dataset(real_file("pydicom", "CT_small.dcm").data)
        frame = decode_frame(open_instance(ds))
        assert np.shares_memory(frame, np.frombuffer(ds.PixelData, dtype=np.uint8))

    def test_native_frame_is_read_straight_into_a_given_buffer(self, real_file):
        source = real_file("pydicom-data", "emri_small.dcm")
        instance = open_instance(source.path)
        buffer = np.empty((64, 64), dtype=instance.native_dtype)
        out = decode_frame(instance, 7, out=buffer)
        assert out is buffer
        np.testing.assert_array_equal(buffer, source.dataset().pixel_array[7])

    @pytest.mark.parametrize(
        ("bits_stored", "signed", "garbage"),
        [
            (12, False, 0xF000),  # unsigned 12-bit with junk in the 4 unused high bits: masked
            (12, True, 0x7000),  # signed 12-bit, junk breaks the sign extension: re-extended
            (14, True, 0x0000),  # signed 14-bit, clean: left as is
        ],
    )
    def test_unused_high_bits_are_ignored_as_pydicom_does(self, real_file, bits_stored, signed, garbage):
        ds = real_file("pydicom", "CT_small.dcm").dataset()
        stored = (ds.pixel_array.astype(np.int32) & ((1 << bits_stored) - 1)) | garbage
        ds.BitsStored, ds.HighBit = bits_stored, bits_stored - 1
        ds.PixelRepresentation = int(signed)
        ds.PixelData = stored.astype(np.uint16).tobytes()
        data = io.BytesIO()
        ds.save_as(data, enforce_file_format=True)
        expected = pydicom.dcmread(io.BytesIO(data.getvalue())).pixel_array
        np.testing.assert_array_equal(decode_frame(open_instance(data.getvalue())), expected)


def test_every_transfer_syntax_has_a_real_file_in_the_tables(real_images):
    """The tables cover every syntax the decoders must handle (checked, not assumed)."""
    syntaxes = {str(image.dataset().file_meta.TransferSyntaxUID) for image in real_images}
    required = {
        ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian,
        RLELossless, JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLosslessSV1, JPEGLSLossless, JPEGLSNearLossless,
        JPEG2000Lossless, JPEG2000,
    }
    assert required <= syntaxes


#: The ways into pixel decoding: the whole dataset from bytes, or one frame from bytes or a path.
_DECODE_ENTRIES = {
    "read_and_decode": lambda source: decode_pixels(read_dataset(source.data)),
    "frame_from_bytes": lambda source: decode_frame(open_instance(source.data)),
    "frame_from_a_path": lambda source: decode_frame(open_instance(source.path)),
}


class TestBrokenFiles:
    @pytest.mark.parametrize("entry", list(_DECODE_ENTRIES))
    def test_every_entry_raises_the_typed_error(self, broken_file, entry):
        source, error, pattern = broken_file
        with pytest.raises(error, match=pattern):
            _DECODE_ENTRIES[entry](source)

    def test_messages_hold_no_patient_data(self, broken_file):
        source, error, pattern = broken_file
        ds = pydicom.dcmread(io.BytesIO(source.data), force=True)
        identifying = [str(ds.get(k, "")) for k in ("PatientName", "PatientID", "PatientBirthDate", "StudyDate")]
        with pytest.raises(error, match=pattern) as raised:
            decode_frame(open_instance(source.data))
        assert raised.value.code == error.code
        for value in filter(None, identifying):
            assert value not in raised.value.message


@pytest.mark.parametrize(
    ("name", "source"),
    [
        ("SC_rgb_dcmtk_+eb+cr.dcm", "pydicom"),  # JPEG baseline data relabelled as MPEG-2: no decoder installed
        ("emri_small_jpeg_2k_lossless.dcm", "pydicom-data"),  # multi-frame JPEG 2000 relabelled as MPEG-2
    ],
)
def test_a_syntax_without_decoder_is_unsupported(real_file, name, source):
    ds = real_file(source, name).dataset()
    ds.file_meta.TransferSyntaxUID = MPEG2MPML
    data = io.BytesIO()
    ds.save_as(data, enforce_file_format=True)
    with pytest.raises(UnsupportedTransferSyntax, match=r"no installed decoder handles transfer syntax 1\.2\.840\.10008\.1\.2\.4\.100"):
        decode_pixels(read_dataset(data.getvalue()))
    with pytest.raises(UnsupportedTransferSyntax, match=r"MPEG2"):
        decode_frame(open_instance(data.getvalue()))


def test_truncated_multiframe_data_is_refused_before_any_frame_is_read(real_file):
    data = real_file("pydicom-data", "emri_small.dcm").data
    truncated = data[: len(data) - 64 * 64]  # half of the last 16-bit frame is missing
    with pytest.raises(InvalidDicom, match=r"truncated: \(0028,0010\) Rows .* \(0028,0008\) Number of Frames need 81920 bytes .* has 77824"):
        open_instance(truncated)


@pytest.mark.parametrize(
    ("body", "pattern"),
    [
        (b"", r"not a DICOM Part 10 file"),  # empty body
        (b"\0" * 128 + b"DICM", r"could not be parsed|no \(0002,0010\)|truncated"),  # preamble and nothing else
        (b"GIF89a" + b"\0" * 200, r"not a DICOM Part 10 file"),  # an image of another format
    ],
)
def test_bodies_that_are_not_dicom_are_invalid(body, pattern):
    with pytest.raises(InvalidDicom, match=pattern):
        read_dataset(body)
    with pytest.raises(InvalidDicom, match=pattern):
        open_instance(body)
