"""Header attributes, converted once per distinct encoded value.

A series repeats most of its header in every instance: Rows, Pixel Spacing, orientation,
rescale, UIDs of the series. pydicom converts an element on first access (about 10 µs each);
:func:`header_value` converts each distinct (tag, VR, encoding, bytes) once and shares the
result, which keeps the header pass over a 300-slice series close to the parse itself.
Multi-valued results come back as tuples, so a shared value cannot be changed in place.
"""

from __future__ import annotations

from typing import Any

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from .errors import InvalidDicom

_CACHE_LIMIT = 4096
_values: dict[tuple, Any] = {}
_tags: dict[str, int] = {}


def _tag(keyword: str) -> int:
    tag = _tags.get(keyword)
    if tag is None:
        tag = _tags.setdefault(keyword, int(tag_for_keyword(keyword)))  # type: ignore[arg-type]
    return tag


def header_value(ds: Dataset, keyword: str, default: Any = None) -> Any:
    """The value of ``keyword`` in ``ds`` as pydicom converts it (tuples for multiple
    values), or ``default`` when the element is absent or empty."""
    tag = _tags.get(keyword) or _tag(keyword)
    element = ds._dict.get(tag)  # Dataset.get_item less its key conversion: 0.2 µs, not 0.7
    if element is None:
        return default
    raw = type(element) is RawDataElement
    if raw and element.value is None and element.value_tell is not None:
        element = ds.get_item(tag)  # a deferred read: get_item reads it
        raw = type(element) is RawDataElement
    if raw and element.length <= _CACHEABLE_BYTES and (element.VR is not None or _cacheable(element, tag)):
        key = (tag, element.VR, element.is_implicit_VR, element.is_little_endian, element.value)
        try:
            return _values[key]
        except KeyError:
            value = _frozen(_converted(ds, tag, keyword), default)
            if len(_values) >= _CACHE_LIMIT:
                _values.clear()
            _values[key] = value
            return value
    return _frozen(_converted(ds, tag, keyword), default)


def _converted(ds: Dataset, tag: int, keyword: str) -> Any:
    """pydicom's conversion of the element, or :class:`InvalidDicom` when its bytes do not fit
    its VR (a US in 3 bytes, an undecodable text): pydicom raises a different exception type
    for each such case, and its messages quote the value."""
    try:
        return ds[tag].value
    except Exception:
        raise InvalidDicom(f"({tag >> 16:04X},{tag & 0xFFFF:04X}) {keyword} cannot be read: its bytes do not fit its value representation") from None


def header_text(ds: Dataset, keyword: str) -> str:
    """A single-valued string element (a UID, Modality) as text, "" when absent, read from
    its encoded bytes without pydicom's value conversion and validation: for values that
    differ per instance and are only hashed or counted, where :func:`header_value`'s cache
    would not help. Equals ``str(ds.get(keyword, ""))`` for such elements."""
    tag = _tag(keyword)
    element = ds.get_item(tag)
    value = None if element is None else element.value
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("latin-1").strip(" \x00")
    return str(value)


#: Longest encoded value kept in the cache: real ones are a few bytes (a spacing, a UID); a
#: hostile header could make each of the cache's entries megabytes long.
_CACHEABLE_BYTES = 256


def _cacheable(element: RawDataElement, tag: int) -> bool:
    """Short values whose conversion depends on nothing but their bytes: not ambiguous VRs
    such as (0028,0120) 'US or SS' in implicit VR, whose meaning depends on other elements."""
    if element.length > _CACHEABLE_BYTES:
        return False
    return element.VR is not None or " or " not in dictionary_VR(tag)


def _frozen(value: Any, default: Any) -> Any:
    if value is None or value == "":
        return default
    if isinstance(value, (MultiValue, list)):
        return tuple(value) or default
    return value
