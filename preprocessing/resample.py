"""Resampling: physical (to a spacing in mm) and image-space (to a tensor size).

Physical resampling is separable linear interpolation: each axis is a gather of two
neighbouring samples and a weighted sum, so a volume is resampled one axis at a time with
cost proportional to the output, on float32, with no spline prefilter. It equals
``scipy.ndimage.map_coordinates(order=1, mode="nearest")`` and SimpleITK's linear
``Resample`` on the same grid (see the tests). Grids are anchored at the first sample, so the
affine's origin does not move; samples past the last input one repeat it.

Image-space resizing keeps the behaviour the 2D models were trained with:
``scipy.ndimage.zoom(order=1, mode="nearest", grid_mode=True)``, pixel edges aligned (computed
with the same separable taps).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class AxisTaps:
    """Linear interpolation along one axis:
    ``out[j] = in[lower[j]] + weight[j] * (in[upper[j]] - in[lower[j]])``.

    ``start`` and ``step`` describe the output grid in input index units (sample j sits at
    input index ``start + j * step``), which is what the affine needs.
    """

    lower: np.ndarray
    upper: np.ndarray
    weight: np.ndarray
    start: float
    step: float

    @property
    def size(self) -> int:
        return int(self.lower.shape[0])

    def apply(self, array: np.ndarray, axis: int) -> np.ndarray:
        """Resample ``array`` along ``axis``; float32 out, whatever the input dtype."""
        low = np.take(array, self.lower, axis=axis).astype(np.float32, copy=False)
        if not self.weight.any():
            return low
        high = np.take(array, self.upper, axis=axis).astype(np.float32, copy=False)
        shape = [1] * array.ndim
        shape[axis] = self.size
        weight = self.weight.reshape(shape)
        high -= low
        high *= weight
        high += low
        return high

    def blend(self, j: int, low: np.ndarray, high: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Output sample ``j`` from its two input samples (already gathered), into ``out``."""
        weight = self.weight[j]
        if weight == 0.0:
            out[...] = low
            return out
        np.subtract(high, low, out=out)
        out *= weight
        out += low
        return out


class PlaneResampler:
    """Separable linear resampling of 2D frames — rows, then columns — that reuses its
    scratch buffers from frame to frame: a series is thousands of same-sized frames, and
    fresh allocations of this size each cost page faults. Integer frames are converted to
    float32 inside the arithmetic, never as a separate pass."""

    def __init__(self, row_taps: AxisTaps, column_taps: AxisTaps) -> None:
        self.row_taps, self.column_taps = row_taps, column_taps
        self._scratch: dict[tuple, tuple[np.ndarray, ...]] = {}

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """(rows, cols[, 3]) → a new float32 (len(row_taps), len(column_taps)[, 3]) array."""
        rows, columns = self.row_taps, self.column_taps
        low, high, mixed, right = self._buffers(frame)
        trailing = (1,) * (frame.ndim - 1)
        np.take(frame, rows.lower, axis=0, out=low, mode="clip")
        if rows.weight.any():
            np.take(frame, rows.upper, axis=0, out=high, mode="clip")
            np.subtract(high, low, out=mixed, dtype=np.float32)
            mixed *= rows.weight.reshape((-1,) + trailing)
            np.add(mixed, low, out=mixed, dtype=np.float32)
        else:
            np.copyto(mixed, low, casting="unsafe")
        out = np.take(mixed, columns.lower, axis=1, mode="clip")
        if columns.weight.any():
            np.take(mixed, columns.upper, axis=1, out=right, mode="clip")
            right -= out
            right *= columns.weight.reshape((-1,) + trailing[1:])
            out += right
        return out

    def _buffers(self, frame: np.ndarray) -> tuple[np.ndarray, ...]:
        key = (frame.shape, frame.dtype.str)
        buffers = self._scratch.get(key)
        if buffers is None:
            rows_shape = (self.row_taps.size,) + frame.shape[1:]
            buffers = self._scratch[key] = (
                np.empty(rows_shape, dtype=frame.dtype),
                np.empty(rows_shape, dtype=frame.dtype),
                np.empty(rows_shape, dtype=np.float32),
                np.empty((self.row_taps.size, self.column_taps.size) + frame.shape[2:], dtype=np.float32),
            )
        return buffers


def coordinate_taps(coordinates: np.ndarray, size_in: int, start: float, step: float) -> AxisTaps:
    """Taps sampling input indices ``coordinates`` (clamped to the input: edge samples repeat)."""
    x = np.clip(np.asarray(coordinates, dtype=np.float64), 0.0, size_in - 1)
    lower = np.floor(x).astype(np.intp)
    weight = (x - lower).astype(np.float32)
    upper = np.minimum(lower + 1, size_in - 1)
    return AxisTaps(lower=lower, upper=upper, weight=weight, start=start, step=step)


def output_length(size_in: int, spacing_in_mm: float, spacing_out_mm: float) -> int:
    """Samples after resampling to a new spacing: the extent ``size × spacing`` is kept."""
    return max(1, int(round(size_in * spacing_in_mm / spacing_out_mm)))


def spacing_taps(size_in: int, spacing_in_mm: float, spacing_out_mm: float, *, reverse: bool = False) -> AxisTaps:
    """Taps from a uniform grid of ``spacing_in_mm`` to one of ``spacing_out_mm``, anchored at
    the first input sample (at the last one, walking backwards, when ``reverse``)."""
    size_out = output_length(size_in, spacing_in_mm, spacing_out_mm)
    step = spacing_out_mm / spacing_in_mm
    start = size_in - 1.0 if reverse else 0.0
    step = -step if reverse else step
    return coordinate_taps(start + np.arange(size_out) * step, size_in, start, step)


def position_taps(positions_mm: np.ndarray, spacing_in_mm: float, spacing_out_mm: float, *, reverse: bool = False) -> AxisTaps:
    """Taps from slices at sorted (possibly unevenly spaced) ``positions_mm`` to a uniform grid
    of ``spacing_out_mm`` starting at the first slice (the last one when ``reverse``).

    ``start`` / ``step`` are expressed in units of the nominal ``spacing_in_mm``, matching an
    affine whose slice step is the mean slice step.
    """
    positions_mm = np.asarray(positions_mm, dtype=np.float64)
    size_in = positions_mm.shape[0]
    size_out = output_length(size_in, spacing_in_mm, spacing_out_mm)
    direction = -1.0 if reverse else 1.0
    anchor = positions_mm[-1] if reverse else positions_mm[0]
    targets = anchor + direction * np.arange(size_out) * spacing_out_mm
    if size_in == 1:
        coordinates = np.zeros(size_out)
    else:
        coordinates = np.interp(targets, positions_mm, np.arange(size_in, dtype=np.float64))
    start = (positions_mm[-1] - positions_mm[0]) / spacing_in_mm if reverse else 0.0
    return coordinate_taps(coordinates, size_in, start, direction * spacing_out_mm / spacing_in_mm)


def identity_taps(size: int, *, reverse: bool = False) -> AxisTaps:
    """Taps that keep every sample (in reverse order when ``reverse``)."""
    index = np.arange(size)[::-1] if reverse else np.arange(size)
    return AxisTaps(
        lower=index.astype(np.intp),
        upper=index.astype(np.intp),
        weight=np.zeros(size, dtype=np.float32),
        start=size - 1.0 if reverse else 0.0,
        step=-1.0 if reverse else 1.0,
    )


def resample_to_spacing(
    array: np.ndarray, spacing_in_mm: tuple[float, ...], spacing_out_mm: tuple[float, ...]
) -> np.ndarray:
    """Linear resampling of the leading ``len(spacing_in_mm)`` axes of ``array`` (float32)."""
    out = array
    for axis, (old, new) in enumerate(zip(spacing_in_mm, spacing_out_mm)):
        out = spacing_taps(out.shape[axis], old, new).apply(out, axis)
    return np.asarray(out, dtype=np.float32)


def resize(
    array: np.ndarray, size: tuple[int, ...], order: int = 1, axes: tuple[int, ...] | None = None
) -> np.ndarray:
    """Resample ``axes`` of ``array`` (default: the leading ``len(size)`` ones) to ``size``
    with spline interpolation of ``order`` (1 = linear), pixel edges aligned; other axes are
    kept. Returns the input unchanged when it already has that size.

    Linear resizing of float32 runs as separable taps (one gather and one multiply-add per
    axis, cost proportional to the output): equal to ``ndimage.zoom(order=1, mode="nearest",
    grid_mode=True)`` within float32 rounding, and 3-7x faster than it on a 512² slice.
    """
    axes = tuple(range(len(size))) if axes is None else axes
    size = tuple(int(s) for s in size)
    if all(array.shape[axis] == s for axis, s in zip(axes, size)):
        return array
    if order == 1 and array.dtype == np.float32:
        out = array
        for axis, s in zip(axes, size):
            if out.shape[axis] != s:
                start, step = resize_index_map(out.shape[axis], s)
                out = coordinate_taps(start + np.arange(s) * step, out.shape[axis], start, step).apply(out, axis)
        return out
    factors = [1.0] * array.ndim
    trim = [slice(None)] * array.ndim
    for axis, s in zip(axes, size):
        factors[axis] = s / array.shape[axis]
        trim[axis] = slice(0, s)
    out = ndimage.zoom(array, factors, order=order, mode="nearest", grid_mode=True)
    return out[tuple(trim)]


def resize_index_map(size_in: int, size_out: int) -> tuple[float, float]:
    """(start, step) in input index units of :func:`resize`'s pixel-edge-aligned grid."""
    step = size_in / size_out
    return 0.5 * step - 0.5, step
