"""Physical header values checked once, before any pixel work: present values must be numbers,
finite and in a physically sane range.

pydicom converts element values lazily, on first access, and raises wherever that access
happens — in the middle of resampling, or after a successful inference while drift features
are read. A value of "abc", NaN or 1e308 in (0018,0050) *Slice Thickness* or (0028,0030)
*Pixel Spacing* then surfaces as a crash far from its cause, or silently as NaN tensors and
gigantic resampling grids. :func:`check_header` converts every value the pipeline reads
(through :func:`preprocessing.attributes.header_value`, so the conversions are cached and
shared with the later stages) and refuses the instance with an :class:`InvalidDicom` that
names the tag, never the value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pydicom.dataset import Dataset

from .attributes import header_value
from .errors import InvalidDicom
from .limits import current_limits


@dataclass(frozen=True)
class NumericRule:
    """What one numeric element must hold: ``count`` values (None: any number of them), each
    finite and within [``low``, ``high``] (None: the extent limit in mm, ± for signed rules)."""

    tag: str
    count: int | None
    low: float | None
    high: float | None
    nonzero: bool = False


#: Every numeric element the pipeline reads for geometry or intensities. Bounds in their
#: units: mm for lengths and positions, direction cosines, stored-value scale for rescale.
RULES: dict[str, NumericRule] = {
    # 0 occurs in real CR headers; it is refused where a spacing is used (geometry.pixel_spacing_mm).
    "PixelSpacing": NumericRule("(0028,0030)", 2, 0.0, 1000.0),
    "ImagerPixelSpacing": NumericRule("(0018,1164)", 2, 0.0, 1000.0),
    "SliceThickness": NumericRule("(0018,0050)", 1, 0.0, None),
    "SpacingBetweenSlices": NumericRule("(0018,0088)", 1, None, None),
    "ImagePositionPatient": NumericRule("(0020,0032)", 3, None, None),
    "ImageOrientationPatient": NumericRule("(0020,0037)", 6, -1.5, 1.5),
    "RescaleSlope": NumericRule("(0028,1053)", 1, -1e6, 1e6, nonzero=True),
    "RescaleIntercept": NumericRule("(0028,1052)", 1, -1e7, 1e7),
    "WindowCenter": NumericRule("(0028,1050)", None, -1e7, 1e7),
    "WindowWidth": NumericRule("(0028,1051)", None, -1e7, 1e7),
}


def check_header(ds: Dataset) -> Dataset:
    """``ds`` unchanged when every value of :data:`RULES` it holds is sane; else
    :class:`InvalidDicom` naming the element. Absent or empty elements pass: whether a
    model needs one is decided where it is used."""
    extent = current_limits().max_extent_mm
    for keyword, rule in RULES.items():
        try:
            value = header_value(ds, keyword)
        except Exception:  # pydicom's conversion of an untrusted value: its message may quote it
            raise InvalidDicom(f"{rule.tag} {_words(keyword)} cannot be read as a number") from None
        if value is None:
            continue
        values = value if isinstance(value, tuple) else (value,)
        if rule.count is not None and len(values) != rule.count:
            raise InvalidDicom(f"{rule.tag} {_words(keyword)} needs {rule.count} value(s); it has {len(values)}")
        low = -extent if rule.low is None else rule.low
        high = extent if rule.high is None else rule.high
        for item in values:
            try:
                number = float(item)
            except (TypeError, ValueError):
                raise InvalidDicom(f"{rule.tag} {_words(keyword)} cannot be read as a number") from None
            if not math.isfinite(number) or not low <= number <= high or (rule.nonzero and number == 0.0):
                raise InvalidDicom(
                    f"{rule.tag} {_words(keyword)} must be a finite number in [{low:g}, {high:g}]"
                    + (" other than 0" if rule.nonzero else "")
                )
    return ds


def _words(keyword: str) -> str:
    return "".join(f" {c}" if c.isupper() else c for c in keyword).strip()
