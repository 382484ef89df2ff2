"""Bounds on what one untrusted DICOM input may make this process allocate or compute.

A hospital network sends truncated files, vendor oddities and, now and then, hostile bytes.
Every size a header declares is checked against these bounds *before* anything of that size
is allocated, so a 3 KB file claiming a million frames is refused in microseconds instead of
exhausting memory. Services set them once at startup from their settings
(:func:`configure_limits`, e.g. the gateway's ``MEDSERVE_MAX_*`` variables); library users
keep the defaults, which admit every real image this project has met (a 2000-slice series,
a 176-frame enhanced MR, a 4k × 4k mammogram, a 120-frame colour ultrasound).
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class InputLimits:
    """Caps on one instance and one request. Units are in the names."""

    #: (0028,0008) *Number of Frames* of one instance.
    max_frames: int = 4096
    #: Rows × Columns × Samples per Pixel of one frame (an 8k × 8k detector is 64 M).
    max_pixels_per_frame: int = 8192 * 8192
    #: Pixels of one series, all instances and frames, and of any array resampled from it
    #: (1 G: 2000 slices of 512 × 1024; a 300-slice 512² CT is 79 M).
    max_voxels_per_request: int = 1 << 30
    #: Instances in one series (and in one request).
    max_instances: int = 2000
    #: Nesting depth of sequences inside a header (real objects stay below 8).
    max_sequence_depth: int = 32
    #: Data elements in one header, nested ones included (an enhanced MR of 176 frames has ~20 k).
    max_elements: int = 1_000_000
    #: Bytes a deflated data set ((0002,0010) 1.2.840.10008.1.2.1.99) may inflate to.
    max_inflated_bytes: int = 1 << 30
    #: Largest physical extent accepted for a spacing, thickness or position, in mm (100 m).
    max_extent_mm: float = 100_000.0


_current = InputLimits()


def current_limits() -> InputLimits:
    """The limits in force in this process."""
    return _current


def configure_limits(limits: InputLimits | None = None, **changes: int | float) -> InputLimits:
    """Set the process-wide limits (a whole :class:`InputLimits`, or fields to change)."""
    global _current
    _current = replace(limits or _current, **changes)
    return _current
