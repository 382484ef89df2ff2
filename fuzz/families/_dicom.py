"""Helpers shared by the DICOM families: write a mutated data set back to Part 10 bytes,
and put raw (possibly invalid) values into it."""

from __future__ import annotations

import io
import random
import struct

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileDataset
from pydicom.tag import Tag


def encode(ds: FileDataset) -> bytes:
    """``ds`` as Part 10 bytes, in its original encoding, raw values written as they are."""
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=False)
    return buffer.getvalue()


def set_raw(ds: Dataset, keyword: str, value: bytes, vr: str | None = None, little_endian: bool = True) -> None:
    """Put ``value`` bytes as the value of ``keyword``, bypassing pydicom's validation."""
    tag = Tag(tag_for_keyword(keyword))
    ds[tag] = RawDataElement(tag, vr or dictionary_VR(tag), len(value), value, 0, False, little_endian)


def set_text(ds: Dataset, keyword: str, text: str) -> None:
    """A string VR value (DS, IS, CS, DA, UI...), padded to even length with a space."""
    value = text.encode("latin-1", "replace")
    set_raw(ds, keyword, value + b" " * (len(value) % 2))


def set_us(ds: FileDataset, keyword: str, number: int) -> None:
    little = ds.original_encoding[1] if ds.original_encoding[1] is not None else True
    set_raw(ds, keyword, struct.pack("<H" if little else ">H", number & 0xFFFF), "US", little)


def is_little_endian(ds: FileDataset) -> bool:
    return ds.original_encoding[1] is not False


def pick(rng: random.Random, *choices):
    return rng.choice(choices)
