"""Multi-frame objects → one header per frame.

Enhanced multi-frame IODs (Enhanced CT/MR/PET…) keep per-frame attributes in functional
groups: item 0 of (5200,9229) *Shared Functional Groups Sequence* holds those common to all
frames, item *i* of (5200,9230) *Per-Frame Functional Groups Sequence* those of frame *i*. This
module flattens them into one small Dataset per frame with the attributes at the top level,
where single-frame IODs have them, so that pydicom's LUT functions and the geometry code take
one shape of input whatever the IOD.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from pydicom.dataset import Dataset

from .decode import Instance
from .geometry import PlaneGeometry, plane_geometry

#: Functional group macros → the attributes they carry (PS3.3 C.7.6.16.2).
_MACROS: dict[str, tuple[str, ...]] = {
    "PlanePositionSequence": ("ImagePositionPatient",),
    "PlaneOrientationSequence": ("ImageOrientationPatient",),
    "PixelMeasuresSequence": ("PixelSpacing", "SliceThickness", "SpacingBetweenSlices"),
    "PixelValueTransformationSequence": ("RescaleSlope", "RescaleIntercept", "RescaleType"),
    "FrameVOILUTSequence": ("WindowCenter", "WindowWidth", "VOILUTFunction", "WindowCenterWidthExplanation"),
}

#: Top-level attributes a frame header keeps: identity, Image Pixel module, LUTs, geometry.
_INSTANCE_KEYWORDS = (
    "Modality", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID",
    "PhotometricInterpretation", "Rows", "Columns", "SamplesPerPixel", "BitsAllocated",
    "BitsStored", "HighBit", "PixelRepresentation", "PixelPaddingValue", "PixelPaddingRangeLimit",
    "ModalityLUTSequence", "VOILUTSequence", "RescaleSlope", "RescaleIntercept", "RescaleType",
    "WindowCenter", "WindowWidth", "VOILUTFunction", "ImagePositionPatient", "ImageOrientationPatient",
    "PixelSpacing", "ImagerPixelSpacing", "SliceThickness", "SpacingBetweenSlices",
)


@dataclass(frozen=True, eq=False)
class Frame:
    """One 2D image of a series: a single-frame instance, or frame ``index`` of a multi-frame
    one, with its flattened ``header`` and its ``plane`` (None without IPP/IOP)."""

    instance: Instance
    index: int
    header: Dataset
    plane: PlaneGeometry | None


def instance_frames(instance: Instance) -> list[Frame]:
    """The frames of ``instance`` in stored order. Frames of a classic multi-frame object
    share one (0020,0032) and have no position of their own (plane None), unless
    (3004,000C) *Grid Frame Offset Vector* places them (RT Dose)."""
    count = instance.pixels.number_of_frames
    headers = frame_headers(instance.header, count)
    frames = [Frame(instance, index, header, plane_geometry(header)) for index, header in enumerate(headers)]
    if count > 1 and not is_enhanced(instance.header):
        offsets = _grid_frame_offsets(instance.header, count)
        plane = frames[0].plane
        if offsets is None or plane is None:
            return [Frame(instance, frame.index, frame.header, None) for frame in frames]
        return [
            Frame(instance, frame.index, frame.header, replace(plane, position_mm=plane.position_mm + offset * plane.normal))
            for frame, offset in zip(frames, offsets)
        ]
    return frames


def _grid_frame_offsets(header: Dataset, count: int) -> np.ndarray | None:
    """Offsets in mm along the normal from (3004,000C) *Grid Frame Offset Vector*: relative
    when its first value is 0, else z coordinates (PS3.3 C.8.8.3.2)."""
    vector = header.get("GridFrameOffsetVector")
    if not vector or len(vector) != count:
        return None
    offsets = np.asarray([float(v) for v in vector], dtype=np.float64)
    if offsets[0] != 0.0:
        offsets = offsets - float(header.ImagePositionPatient[2])
    return offsets


def is_enhanced(header: Dataset) -> bool:
    """Whether the instance carries functional groups (an enhanced multi-frame IOD)."""
    return "PerFrameFunctionalGroupsSequence" in header or "SharedFunctionalGroupsSequence" in header


def frame_headers(header: Dataset, number_of_frames: int) -> list[Dataset]:
    """One header per frame. Without functional groups every frame shares ``header`` itself."""
    if not is_enhanced(header):
        return [header] * number_of_frames
    shared = _first_item(header.get("SharedFunctionalGroupsSequence"))
    per_frame = header.get("PerFrameFunctionalGroupsSequence") or []
    base = Dataset()
    base.file_meta = header.file_meta
    for keyword in _INSTANCE_KEYWORDS:
        if keyword in header:
            base[keyword] = header[keyword]
    views = []
    for index in range(number_of_frames):
        view = Dataset()
        view.file_meta = header.file_meta
        view.update(base)
        for groups in (shared, per_frame[index] if index < len(per_frame) else None):
            _flatten_into(view, groups)
        views.append(view)
    return views


def _flatten_into(view: Dataset, groups: Dataset | None) -> None:
    if groups is None:
        return
    for macro, keywords in _MACROS.items():
        item = _first_item(groups.get(macro))
        if item is None:
            continue
        for keyword in keywords:
            if keyword in item:
                view[keyword] = item[keyword]


def _first_item(sequence: object) -> Dataset | None:
    return sequence[0] if sequence else None  # type: ignore[index]
