"""Frames → float32 volumes of modality values, decoded straight into preallocated arrays.

Two ways: :func:`load_volume` fills a full-resolution (D, H, W) volume;
:func:`load_resampled` streams frames through the separable linear resampler, so that only
the output volume and the two or three frames the current output slice needs are ever held.
Frames are read one at a time into one reused buffer (a 512×512 frame stays in the CPU
cache through its in-plane resampling, which batching several frames would lose). When a
frame's Modality LUT is linear and it has no padding, interpolation runs on the stored
integers and the rescale on the smaller result — the two commute. When every frame is
native (read without a decoder), the output slices are split into contiguous slabs resampled
by :func:`~preprocessing.threads.worker_threads` threads at once, each with its own buffers
(a frame on a slab boundary is read by both slabs); compressed frames are decoded in order,
by the decoder pool, on one thread.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .decode import decode_frame
from .frames import Frame
from .pixels import fill_padding, is_color, linear_rescale, padding_mask, to_modality_values, to_rgb
from .resample import AxisTaps, PlaneResampler
from .threads import for_slabs, worker_threads


class _FrameReader:
    """Reads frames as ``(values, slope, intercept)``, modality values being
    ``values * slope + intercept`` (times the frame's ``scale``, e.g. an SUV factor).

    Uncompressed grayscale frames with a linear Modality LUT and no (0028,0120) padding come
    back as their stored integers: a read-only view on the uploaded bytes, or, for a file,
    a buffer reused by the next call; any other frame as
    float32 modality values (padding filled), or RGB for color, with slope 1, intercept 0.
    """

    def __init__(self, frames: Sequence[Frame], scales: Sequence[float] | None) -> None:
        self._frames = frames
        self._scales = scales if scales is not None else [1.0] * len(frames)
        self._buffers: dict[np.dtype, np.ndarray] = {}

    @property
    def native(self) -> bool:
        """Whether every frame is read without a decoder: then several readers (one per
        thread) may read frames at once."""
        return all(frame.instance.native_dtype is not None for frame in self._frames)

    def copy(self) -> _FrameReader:
        """A reader of the same frames with buffers of its own."""
        return _FrameReader(self._frames, self._scales)

    def __call__(self, k: int) -> tuple[np.ndarray, float, float]:
        frame, scale = self._frames[k], self._scales[k]
        if is_color(frame.header):
            rgb = to_rgb(decode_frame(frame.instance, frame.index), frame.instance.header)
            return rgb.astype(np.float32), 1.0, 0.0
        rescale = linear_rescale(frame.header)
        dtype = frame.instance.native_dtype
        if rescale is not None and dtype is not None:
            buffer = None if frame.instance.frames_in_memory else self._buffer(frame, dtype)
            stored = decode_frame(frame.instance, frame.index, out=buffer)
            mask = padding_mask(frame.header, stored)
            if mask is None:
                return stored, rescale[0] * scale, rescale[1] * scale
        else:
            stored = decode_frame(frame.instance, frame.index)
            mask = padding_mask(frame.header, stored)
        values = fill_padding(to_modality_values(frame.header, stored), mask)
        if scale != 1.0:
            values *= np.float32(scale)
        return values, 1.0, 0.0

    def _buffer(self, frame: Frame, dtype: np.dtype) -> np.ndarray:
        pixels = frame.instance.pixels
        buffer = self._buffers.get(dtype)
        if buffer is None or buffer.shape != (pixels.rows, pixels.columns):
            buffer = self._buffers[dtype] = np.empty((pixels.rows, pixels.columns), dtype=dtype)
        return buffer


def load_volume(frames: Sequence[Frame], scales: Sequence[float] | None = None) -> np.ndarray:
    """Modality values of ``frames`` stacked in order: (D, H, W) or (D, H, W, 3), float32."""
    read = _FrameReader(frames, scales)
    first = frames[0].instance.pixels
    shape = (len(frames), first.rows, first.columns) + ((3,) if is_color(frames[0].header) else ())
    volume = np.empty(shape, dtype=np.float32)
    for k in range(len(frames)):
        values, slope, intercept = read(k)
        np.multiply(values, np.float32(slope), out=volume[k], casting="unsafe")
        if intercept != 0.0:
            volume[k] += np.float32(intercept)
    return volume


def load_resampled(
    frames: Sequence[Frame],
    slice_taps: AxisTaps,
    row_taps: AxisTaps,
    column_taps: AxisTaps,
    scales: Sequence[float] | None = None,
) -> np.ndarray:
    """Modality values of ``frames`` resampled along (slice, row, column) by the three taps:
    (len(slice_taps), len(row_taps), len(column_taps)[, 3]), float32."""
    read = _FrameReader(frames, scales)
    channels = (3,) if is_color(frames[0].header) else ()
    out = np.empty((slice_taps.size, row_taps.size, column_taps.size) + channels, dtype=np.float32)

    def fill(slab: slice) -> None:
        reader = read if slab.start == 0 else read.copy()
        _resample_slab(reader, slice_taps, PlaneResampler(row_taps, column_taps), range(slab.start, slab.stop), out)

    for_slabs(fill, slice_taps.size, worker_threads() if read.native else 1)
    return out


def _resample_slab(
    read: _FrameReader, slice_taps: AxisTaps, in_plane: PlaneResampler, slab: range, out: np.ndarray
) -> None:
    """Output slices ``slab`` into ``out``: each input frame they need is read and resampled
    in plane once, and dropped after the last output slice that blends it."""
    last_use = {k: j for j in slab for k in _inputs_of(slice_taps, j)}
    resampled: dict[int, np.ndarray] = {}
    for j in slab:
        inputs = _inputs_of(slice_taps, j)
        for k in inputs:
            if k not in resampled:
                values, slope, intercept = read(k)
                resampled[k] = _rescaled(in_plane(values), slope, intercept)
        slice_taps.blend(j, resampled[inputs[0]], resampled[inputs[-1]], out[j])
        for k in inputs:
            if last_use[k] == j:
                del resampled[k]


def _rescaled(values: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    """``values * slope + intercept`` as float32, in place when ``values`` is float32."""
    if values.dtype != np.float32:
        values = values.astype(np.float32)
    if slope != 1.0:
        values *= np.float32(slope)
    if intercept != 0.0:
        values += np.float32(intercept)
    return values


def _inputs_of(taps: AxisTaps, j: int) -> tuple[int, ...]:
    """The input samples output sample ``j`` reads: one when it falls on a sample."""
    low, high = int(taps.lower[j]), int(taps.upper[j])
    return (low, high) if taps.weight[j] > 0 and high != low else (low,)
