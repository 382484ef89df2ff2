"""Where pixels are in the patient: image planes, volume affines and reorientation.

Coordinates are DICOM patient coordinates, LPS, in mm: x grows toward the patient's Left, y
toward Posterior, z toward Superior (PS3.3 C.7.6.2.1.1). Volumes are indexed (slice, row,
column) = (d, h, w), the order of a numpy array and of PyTorch's [D, H, W]. An affine maps the
homogeneous index (d, h, w, 1) to LPS mm: its first three columns are the steps of the three
array axes, the fourth the position of voxel (0, 0, 0). nibabel's DICOM wrappers index
(row, column, slice) and SimpleITK (column, row, slice); their affines are ours with the
columns permuted.
"""

from __future__ import annotations

import itertools
import math
import struct
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from pydicom.dataset import Dataset

from .attributes import header_value
from .errors import InvalidDicom
from .limits import current_limits
from .spec import ORIENTATION_AXES


@dataclass(frozen=True)
class PlaneGeometry:
    """One image plane. ``position_mm``: (0020,0032) *Image Position (Patient)*, the center of
    the first pixel. ``row_cosine`` / ``column_cosine``: the two triplets of (0020,0037)
    *Image Orientation (Patient)* — the direction along a row (column index grows) and down a
    column (row index grows)."""

    position_mm: np.ndarray
    row_cosine: np.ndarray
    column_cosine: np.ndarray

    @property
    def normal(self) -> np.ndarray:
        """Unit slice normal, row × column: +z (Superior) for an axial image in DICOM order."""
        return np.cross(self.row_cosine, self.column_cosine)

    def same_orientation(self, other: "PlaneGeometry", tolerance: float) -> bool:
        if self.row_cosine is other.row_cosine and self.column_cosine is other.column_cosine and tolerance >= 0:
            return True  # one (0020,0037) value: the arrays are shared (see plane_geometry)
        return bool(
            np.abs(self.row_cosine - other.row_cosine).max() <= tolerance
            and np.abs(self.column_cosine - other.column_cosine).max() <= tolerance
        )


def plane_geometry(header: Dataset) -> PlaneGeometry | None:
    """The plane of a (flattened) frame header, or None without IPP/IOP (e.g. CR, US).

    The position is checked with Python floats (three values: numpy's per-call cost would
    dominate); the orientation, the same in every frame of a series, is checked and
    normalized once per distinct value (:func:`_unit_cosines`), its arrays shared read-only.
    """
    position = header_value(header, "ImagePositionPatient")
    orientation = header_value(header, "ImageOrientationPatient")
    if not position or not orientation:
        return None
    try:
        position_mm = [float(v) for v in position]
        cosines = tuple(float(v) for v in orientation)
    except (TypeError, ValueError):
        raise InvalidDicom("(0020,0032) Image Position or (0020,0037) Image Orientation (Patient) is not numeric") from None
    if len(position_mm) != 3 or len(cosines) != 6:
        raise InvalidDicom("(0020,0032) needs 3 and (0020,0037) 6 values")
    limit = current_limits().max_extent_mm
    if not all(math.isfinite(v) and abs(v) <= limit for v in position_mm):
        raise InvalidDicom("(0020,0032) Image Position (Patient) must be finite and within the limits (mm)")
    row, column = _unit_cosines(_COSINES.pack(*cosines))  # bytes: 0.0 and -0.0 are two values
    return PlaneGeometry(position_mm=np.array(position_mm, dtype=np.float64), row_cosine=row, column_cosine=column)


_COSINES = struct.Struct("<6d")


@lru_cache(maxsize=256)
def _unit_cosines(packed: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(0020,0037)'s row and column direction cosines (six packed float64) checked and scaled
    to unit length (read-only: the frames of a series share them)."""
    values = np.asarray(_COSINES.unpack(packed), dtype=np.float64)
    if not np.isfinite(values).all():
        raise InvalidDicom("(0020,0037) Image Orientation (Patient) must be finite")
    row, column = values[:3], values[3:]
    row_norm, column_norm = np.linalg.norm(row), np.linalg.norm(column)
    if not (0.5 <= row_norm <= 1.5 and 0.5 <= column_norm <= 1.5) or abs(np.dot(row, column)) / (row_norm * column_norm) > 0.01:
        raise InvalidDicom("(0020,0037) Image Orientation (Patient) is not two orthogonal unit vectors")
    unit_row, unit_column = row / row_norm, column / column_norm
    unit_row.flags.writeable = unit_column.flags.writeable = False
    return unit_row, unit_column


def pixel_spacing_mm(header: Dataset) -> tuple[float, float] | None:
    """(between rows, between columns) in mm: (0028,0030) *Pixel Spacing*, else the detector's
    (0018,1164) *Imager Pixel Spacing* (CR, DX); None when neither is present."""
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = header_value(header, keyword)
        if value:
            try:
                spacing = (float(value[0]), float(value[1]))
            except (TypeError, ValueError, IndexError):
                raise InvalidDicom(f"{keyword} needs two numbers (mm)") from None
            if not (np.isfinite(spacing).all() and 0 < min(spacing) and max(spacing) <= 1000.0):
                raise InvalidDicom(f"{keyword} must be two finite numbers in (0, 1000] mm")
            return spacing
    return None


def volume_affine(
    origin_mm: np.ndarray, slice_step_mm: np.ndarray, plane: PlaneGeometry, spacing_mm: tuple[float, float]
) -> np.ndarray:
    """Affine of a stack of ``plane``-oriented frames: slice axis along ``slice_step_mm``, rows
    down ``column_cosine`` every ``spacing_mm[0]``, columns along ``row_cosine`` every
    ``spacing_mm[1]``."""
    affine = np.eye(4)
    affine[:3, 0] = slice_step_mm
    affine[:3, 1] = plane.column_cosine * spacing_mm[0]
    affine[:3, 2] = plane.row_cosine * spacing_mm[1]
    affine[:3, 3] = origin_mm
    return affine


def index_map_affine(affine: np.ndarray, axis: int, start: float, step: float) -> np.ndarray:
    """Affine after a resampling in which output index j of ``axis`` samples input index
    ``start + j * step`` (resampling, resizing, cropping, padding and flipping are all this)."""
    out = affine.copy()
    out[:3, 3] = affine[:3, 3] + affine[:3, axis] * start
    out[:3, axis] = affine[:3, axis] * step
    return out


def spacing_of(affine: np.ndarray) -> tuple[float, float, float]:
    """Length in mm of each array axis's step."""
    return tuple(float(v) for v in np.linalg.norm(affine[:3, :3], axis=0))  # type: ignore[return-value]


def axis_codes(affine: np.ndarray) -> str:
    """Orientation letters of the array axes (d, h, w): where each points, e.g. ``"SPL"`` for
    an axial DICOM stack. Oblique axes get the letter of their closest patient axis, chosen
    jointly so that the three letters name three different patient axes."""
    permutation, signs = _closest_patient_axes(affine)
    return "".join(ORIENTATION_AXES[axis][0 if sign > 0 else 1] for axis, sign in zip(permutation, signs))


@dataclass(frozen=True)
class Reorientation:
    """How to turn an array into a target orientation by axis permutation and flips only (no
    interpolation): target axis t is source axis ``source_axes[t]``, reversed if ``flips[t]``."""

    source_axes: tuple[int, int, int]
    flips: tuple[bool, bool, bool]

    @property
    def is_identity(self) -> bool:
        return self.source_axes == (0, 1, 2) and not any(self.flips)

    def apply(self, array: np.ndarray) -> np.ndarray:
        """A view of ``array`` (spatial axes first; a trailing channel axis is kept)."""
        axes = list(self.source_axes) + list(range(3, array.ndim))
        out = np.transpose(array, axes)
        for axis, flip in enumerate(self.flips):
            if flip:
                out = np.flip(out, axis)
        return out

    def apply_affine(self, affine: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
        """The affine of :meth:`apply`'s output, for a source array of ``shape``."""
        out = np.eye(4)
        out[:3, 3] = affine[:3, 3]
        for target, source in enumerate(self.source_axes):
            out[:3, target] = affine[:3, source]
        for target, flip in enumerate(self.flips):
            if flip:
                out = index_map_affine(out, target, shape[self.source_axes[target]] - 1, -1.0)
        return out


def reorientation(affine: np.ndarray, code: str) -> Reorientation:
    """The permutation and flips that bring an array with ``affine`` to orientation ``code``."""
    permutation, signs = _closest_patient_axes(affine)
    source_axes, flips = [], []
    for letter in code:
        patient_axis = next(i for i, pair in enumerate(ORIENTATION_AXES) if letter in pair)
        wanted_sign = 1 if ORIENTATION_AXES[patient_axis][0] == letter else -1
        source = permutation.index(patient_axis)
        source_axes.append(source)
        flips.append(bool(signs[source] != wanted_sign))
    return Reorientation(source_axes=tuple(source_axes), flips=tuple(flips))  # type: ignore[arg-type]


def _closest_patient_axes(affine: np.ndarray) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """For each array axis, the patient axis it is closest to (a permutation maximizing the
    summed |cosine|) and the sign of its direction along it."""
    directions = affine[:3, :3] / np.linalg.norm(affine[:3, :3], axis=0)
    best = max(
        itertools.permutations(range(3)),
        key=lambda perm: sum(abs(directions[perm[axis], axis]) for axis in range(3)),
    )
    signs = tuple(1 if directions[best[axis], axis] >= 0 else -1 for axis in range(3))
    return best, signs
