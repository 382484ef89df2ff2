"""Header values read on the hot path equal what pydicom gives."""

from __future__ import annotations

import pytest

from devtools.testdata import pydicom_test_file
from preprocessing import InvalidDicom, open_instance
from preprocessing.attributes import header_text, header_value

KEYWORDS = ("Modality", "Manufacturer", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "PatientPosition")


def test_header_text_equals_pydicom_on_every_real_image(real_images) -> None:
    for image in real_images:
        raw, converted = image.dataset(), image.dataset()
        for keyword in KEYWORDS:
            assert header_text(raw, keyword) == str(converted.get(keyword, "")), (image, keyword)


def test_header_text_of_absent_and_already_converted_elements(real_file) -> None:
    ds = real_file("pydicom", "CT_small.dcm").dataset()
    assert header_text(ds, "FrameOfReferenceUID") == str(ds.FrameOfReferenceUID)
    ds.SOPInstanceUID = "1.2.3"  # a value set by code, not read from bytes
    assert header_text(ds, "SOPInstanceUID") == "1.2.3"
    del ds.Manufacturer
    assert header_text(ds, "Manufacturer") == ""


def test_header_value_shares_converted_values(real_file) -> None:
    first, second, reference = (real_file("pydicom", "CT_small.dcm").dataset() for _ in range(3))
    assert header_value(first, "PixelSpacing") is header_value(second, "PixelSpacing")  # converted once
    assert header_value(first, "PixelSpacing") == tuple(reference.PixelSpacing)


@pytest.mark.parametrize(
    ("tag_bytes", "length", "value", "named"),
    [
        (b"\x28\x00\x10\x00US", 3, b"\x80\x00\x00", r"\(0028,0010\) Rows cannot be read"),  # a US in 3 bytes
        (b"\x28\x00\x00\x01US", 1, b"\x10", r"\(0028,0100\) BitsAllocated cannot be read"),  # a US in 1 byte
    ],
)
def test_bytes_that_do_not_fit_their_vr_are_invalid_dicom_naming_the_tag(tag_bytes, length, value, named) -> None:
    raw = pydicom_test_file("CT_small.dcm").read_bytes()
    at = raw.find(tag_bytes + b"\x02\x00")
    assert at > 0
    mutated = raw[:at] + tag_bytes + length.to_bytes(2, "little") + value + raw[at + 10 :]
    with pytest.raises(InvalidDicom, match=named):
        open_instance(mutated)


def test_long_values_are_converted_but_not_cached(real_file) -> None:
    """The cache holds at most 4096 values: a header with megabyte-long values must not make
    it hold gigabytes."""
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag

    from preprocessing import attributes

    ds = real_file("pydicom", "CT_small.dcm").dataset()
    long_value = b"\\".join([b"0.5"] * 100_000)
    ds[Tag(0x00280030)] = RawDataElement(Tag(0x00280030), "DS", len(long_value), long_value, 0, False, True)
    before = len(attributes._values)
    assert len(header_value(ds, "PixelSpacing")) == 100_000
    assert len(attributes._values) == before
