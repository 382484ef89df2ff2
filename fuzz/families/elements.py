"""Element values of parsed real data sets rewritten to what a careless or hostile sender
writes: zero, huge, negative, not-a-number, text where numbers belong; required elements
removed; the transfer syntax lying; sequences nested far too deep."""

from __future__ import annotations

import random

from .. import part10
from ..envelopes import MODELS, dicom_request, predict_target
from ..cases import Request
from . import family
from ._dicom import encode, set_raw, set_text, set_us

#: (0028,xxxx) image pixel description, and the values each is set to.
_US_VALUES = (0, 1, 7, 12, 33, 64, 0x7FFF, 0x8000, 0xFFFF)
_GEOMETRY = ("Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit", "SamplesPerPixel", "PixelRepresentation", "PlanarConfiguration")
_FRAMES = ("0", "-1", "-3", "2", "1000000", "2147483648", "99999999999", "abc", "1.5", "")
#: Decimal-string physical values and what they become.
_PHYSICAL = {
    "PixelSpacing": 2,
    "SliceThickness": 1,
    "SpacingBetweenSlices": 1,
    "ImageOrientationPatient": 6,
    "ImagePositionPatient": 3,
    "RescaleSlope": 1,
    "RescaleIntercept": 1,
    "WindowCenter": 1,
    "WindowWidth": 1,
}
_DS_VALUES = ("nan", "NaN", "inf", "-inf", "1e308", "-1e308", "1e6", "0", "-1", "-0", "abc", "", "1e-320", "3.4e38")


def _single(rng: random.Random, corpus):
    name = rng.choice(corpus.native + corpus.encapsulated["jpeg2000"] + corpus.encapsulated["rle"])
    return name, corpus.dataset(name)


@family
def image_geometry(rng, corpus):
    """Rows/Columns/BitsAllocated/BitsStored/HighBit/SamplesPerPixel/... and NumberOfFrames
    set to 0, huge, 'negative' (top bit set) or inconsistent values, one or several at once."""
    name, ds = _single(rng, corpus)
    changes = []
    for keyword in rng.sample(_GEOMETRY, rng.randint(1, 3)):
        value = rng.choice(_US_VALUES)
        set_us(ds, keyword, value)
        changes.append(f"{keyword}={value}")
    if rng.random() < 0.5:
        frames = rng.choice(_FRAMES)
        set_text(ds, "NumberOfFrames", frames)
        changes.append(f"NumberOfFrames={frames!r}")
    return dicom_request(rng, [encode(ds)], f"{name} {' '.join(changes)}")


@family
def physical_values(rng, corpus):
    """PixelSpacing, SliceThickness, orientation, position, rescale, window: NaN, inf,
    1e308, 0, negative, text, wrong multiplicity."""
    name, ds = _single(rng, corpus)
    changes = []
    for keyword in rng.sample(sorted(_PHYSICAL), rng.randint(1, 2)):
        multiplicity = _PHYSICAL[keyword] + rng.choice((0, 0, 0, -1, 1))
        values = [rng.choice(_DS_VALUES) if rng.random() < 0.7 else "1" for _ in range(max(1, multiplicity))]
        set_text(ds, keyword, "\\".join(values))
        changes.append(f"{keyword}={'/'.join(values)}")
    return dicom_request(rng, [encode(ds)], f"{name} {' '.join(changes)}")


@family
def photometric_swap(rng, corpus):
    """(0028,0004) Photometric Interpretation swapped (693_J2KI.dcm with RGB / YBR_FULL is
    known to abort gdcm), sometimes with SamplesPerPixel changed to match."""
    name = rng.choice(("693_J2KI.dcm", "693_J2KI.dcm", *corpus.encapsulated["jpeg2000"], *corpus.encapsulated["jpeg"], *corpus.encapsulated["rle"], "CT_small.dcm"))
    ds = corpus.dataset(name)
    photometric = rng.choice(("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "PALETTE COLOR", "MONOCHROME1", "MONOCHROME2", "HSV", "", "XYZ"))
    set_text(ds, "PhotometricInterpretation", photometric)
    note = f"{name} PhotometricInterpretation={photometric!r}"
    if rng.random() < 0.3:
        samples = rng.choice((1, 3, 4))
        set_us(ds, "SamplesPerPixel", samples)
        note += f" SamplesPerPixel={samples}"
    return dicom_request(rng, [encode(ds)], note)


@family
def charset_and_dates(rng, corpus):
    """Unknown (0008,0005) Specific Character Set, invalid dates, undecodable names, mostly
    asked for DICOM SEG (which copies patient and study attributes)."""
    name, ds = _single(rng, corpus)
    kind = rng.choice(("charset", "birth_date", "study_date", "name_bytes"))
    if kind == "charset":
        set_text(ds, "SpecificCharacterSet", rng.choice(("ISO_IR 999", "UTF-9", "\\\\", "ISO 2022 IR 87\\GB18030", "x" * 64)))
    elif kind == "birth_date":
        set_text(ds, "PatientBirthDate", rng.choice(("20231345", "abcdefgh", "1", "00000000", "19700101-")))
    elif kind == "study_date":
        set_text(ds, "StudyDate", rng.choice(("2023-13-45", "99999999", "")))
    else:
        set_raw(ds, "PatientName", rng.choice((b"\xff\xfe\xfd\xfc", b"\x1b$B\x1b(B", b"A" * 1024)))
    data = encode(ds)
    if rng.random() < 0.6:
        model = rng.choice(("ct_nodule_segmenter", "ct_nodule_segmenter_3d"))
        return Request("POST", predict_target(model, "seg"), data, ((b"Content-Type", b"application/dicom"),), f"{name} {kind}")
    return dicom_request(rng, [data], f"{name} {kind}")


@family
def identifiers_removed(rng, corpus):
    """FrameOfReferenceUID, SOP/Series/Study Instance UID or Modality removed or changed
    (a real 693_UNCI.dcm has no FrameOfReferenceUID), often with format=seg."""
    name, ds = _single(rng, corpus)
    keyword = rng.choice(("FrameOfReferenceUID", "SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID", "Modality", "SOPClassUID"))
    if rng.random() < 0.7:
        if keyword in ds:
            del ds[keyword]
        note = f"{name} {keyword} removed"
    else:
        value = rng.choice(("", "1.2.3", "not.a.uid", "9" * 80, "PT", "MR", "XX"))
        set_text(ds, keyword, value)
        note = f"{name} {keyword}={value!r}"
    output = rng.choice(("seg", "seg", "nifti", "png", "json"))
    model = rng.choice(MODELS)
    return Request("POST", predict_target(model, output), encode(ds), ((b"Content-Type", b"application/dicom"),), note)


_UNKNOWN_SYNTAXES = (b"1.2.3.4", b"1.2.840.10008.1.2.4.999", b"", b"abc", b"1." + b"9" * 70, b"1.2.840.10008.1.2.4.100")
_KNOWN_SYNTAXES = (
    b"1.2.840.10008.1.2",  # implicit VR little endian
    b"1.2.840.10008.1.2.1",  # explicit VR little endian
    b"1.2.840.10008.1.2.2",  # explicit VR big endian (retired)
    b"1.2.840.10008.1.2.1.99",  # deflated explicit VR little endian
    b"1.2.840.10008.1.2.4.50",  # JPEG baseline
    b"1.2.840.10008.1.2.4.70",  # JPEG lossless SV1
    b"1.2.840.10008.1.2.4.80",  # JPEG-LS lossless
    b"1.2.840.10008.1.2.4.90",  # JPEG 2000 lossless
    b"1.2.840.10008.1.2.4.201",  # HTJ2K lossless
    b"1.2.840.10008.1.2.5",  # RLE lossless
)


@family
def transfer_syntax_swap(rng, corpus):
    """(0002,0010) Transfer Syntax UID replaced by an unknown UID or by a known one that does
    not describe how the data set and its pixel data are encoded."""
    name = rng.choice(corpus.all_images)
    uid = rng.choice(_UNKNOWN_SYNTAXES) if rng.random() < 0.4 else rng.choice(_KNOWN_SYNTAXES)
    data = part10.with_transfer_syntax(corpus.bytes(name), uid)
    return dicom_request(rng, [data], f"{name} TransferSyntaxUID={uid.decode()[:40]!r}")


@family
def vr_length_mismatch(rng, corpus):
    """Element lengths that cannot hold their VR: US in 1/3/6 bytes, UL in 2, FD in 3, a DS
    over 16 characters, a UI over 64, a DA of 3 characters."""
    name = rng.choice(("CT_small.dcm", "MR_small.dcm", "693_UNCI.dcm", "pynetdicom:CTImageStorage.dcm", "MR_small_RLE.dcm"))
    ds = corpus.dataset(name)
    keyword, vr, value = rng.choice(
        (
            ("Rows", "US", rng.randbytes(rng.choice((1, 3, 6)))),
            ("Columns", "US", rng.randbytes(rng.choice((1, 3)))),
            ("BitsAllocated", "US", b"\x10"),
            ("SamplesPerPixel", "US", b"\x01\x00\x01"),
            ("PixelSpacing", "DS", b"0.12345678901234567890\\1 "),
            ("SliceThickness", "DS", b"1" * 33),
            ("SOPInstanceUID", "UI", b"1." * 40),
            ("StudyDate", "DA", b"202"),
            ("PatientBirthDate", "DA", b"1\x00"),
            ("RescaleSlope", "DS", b"\x00\x01\x02\x03"),
            ("ImageOrientationPatient", "DS", b"1\\0\\0\\0\\1"),
            ("NumberOfFrames", "IS", b"\xff\xff"),
            ("InstanceNumber", "IS", b"1" * 15 + b" "),
        )
    )
    set_raw(ds, keyword, value, vr)
    return dicom_request(rng, [encode(ds)], f"{name} {keyword} {vr} in {len(value)} bytes")


@family
def deep_sequences(rng, corpus):
    """Undefined-length sequences nested 10 to 2,000 deep, spliced in before (7FE0,0010),
    terminated or not (unterminated ones to /dicomweb/studies as well)."""
    name = rng.choice(("CT_small.dcm", "693_UNCI.dcm", "MR_small.dcm", "pynetdicom:CTImageStorage.dcm", "MR_small_RLE.dcm"))
    data = corpus.bytes(name)
    depth = rng.choice((10, 64, 200, 1000, 1000, 2000))
    terminated = rng.random() < 0.6
    walked = part10.elements(data)
    after = [e for e in walked if e.tag > (0x0008, 0x1115)]
    offset = after[0].offset if after else len(data)
    mutated = part10.insert(data, offset, part10.nested_sequences(depth, terminated=terminated))
    return dicom_request(rng, [mutated], f"{name} {depth} nested sequences{'' if terminated else ' unterminated'}")
