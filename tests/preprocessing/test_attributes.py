"""Header values read on the hot path equal what pydicom gives."""

from __future__ import annotations

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
