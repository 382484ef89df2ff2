"""DICOM → one model-ready array + what was applied, for 2D instances and whole series.

Read top to bottom; both paths run the stages of :mod:`preprocessing.spec` in the same order:

    check modality → decode → Modality LUT (HU) / padding / SUV → reorient → resample to spacing_mm
                   → clip → window | normalize | normalize_steps (MONOCHROME1 flipped)
                   → output_size (resize_mode | crop_pad) → layout, dtype

(with ``stats_grid="output"`` the normalization moves after ``output_size``, so that its
statistics are taken on the model's grid).

``prepare_slice`` is the array half of the 2D path, shared by training code so that a model is
trained on exactly what the gateway sends it. ``preprocess_series`` is the series path: it
plans the series from headers, then streams frames through the resampler when the spec asks
for a spacing, so the full-resolution volume is never built.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from .decode import Instance, InstanceSource, decode_frame, open_instance
from .foreground import foreground_box
from .errors import InconsistentSeries, InputTooLarge, InvalidDicom, ModalityMismatch
from .geometry import Reorientation, axis_codes, index_map_affine, pixel_spacing_mm, reorientation, spacing_of
from .layout import crop_or_pad, image_to_chw, volume_to_cdhw, volume_to_slices
from .normalize import apply_steps, clip_values, normalize
from .quality import input_statistics
from .pixels import (
    apply_dicom_voi,
    apply_window,
    fill_padding,
    invert_monochrome1,
    invert_windowed_monochrome1,
    is_color,
    is_monochrome1,
    padding_mask,
    resolve_window,
    to_modality_values,
    to_rgb,
)
from .limits import current_limits
from .resample import (
    AxisTaps, identity_taps, output_length, position_taps, resample_to_spacing, resize_grid, resize_with_mode,
    spacing_taps,
)
from .series import SeriesPlan, plan_series
from .spec import PreprocessingSpec
from .suv import suv_bw_factor
from .validate import check_header
from .volume import load_resampled, load_volume


@dataclass(frozen=True)
class VolumeGeometry:
    """Where the voxels of a prepared volume are: ``affine_lps`` maps (d, h, w, 1) → LPS mm,
    ``spacing_mm`` is (slice, row, column), ``orientation`` the axis letters (e.g. ``"SPL"``)."""

    affine_lps: np.ndarray
    spacing_mm: tuple[float, float, float]
    shape: tuple[int, int, int]
    orientation: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "affine_lps": np.round(self.affine_lps, 6).tolist(),
            "spacing_mm": [round(s, 6) for s in self.spacing_mm],
            "shape": list(self.shape),
            "orientation": self.orientation,
        }


@dataclass(frozen=True)
class PreparedInput:
    """A model input and a JSON-able record of the preprocessing applied to produce it.

    For series inputs, ``geometry`` locates the voxels of the prepared volume in the patient
    and ``source_geometry`` those of the series as sent (sorted along the slice normal), so
    that a prediction can be put back onto the source grid with one affine resampling.
    Both are None for 2D instances.
    """

    array: np.ndarray
    applied: dict[str, Any] = field(default_factory=dict)
    geometry: VolumeGeometry | None = None
    source_geometry: VolumeGeometry | None = None


def check_modality(ds: Dataset, spec: PreprocessingSpec) -> str:
    modality = str(ds.get("Modality", "")).upper()
    if spec.modalities and modality not in spec.modalities:
        raise ModalityMismatch(
            f"this model takes {'/'.join(spec.modalities)} images; the instance's Modality is "
            f"{modality or 'missing'}"
        )
    return modality


def prepare_slice(
    values: np.ndarray,
    spec: PreprocessingSpec,
    ds: Dataset | None = None,
    *,
    pixel_spacing: tuple[float, float] | None = None,
) -> PreparedInput:
    """Resample, window or normalize, and resize one 2D image of modality values (HU for CT)
    — (H, W), or (H, W, 3) RGB — into [C, H, W].

    ``ds`` supplies the instance's own window (``from_dicom``), MONOCHROME1 and, unless
    ``pixel_spacing`` (mm, between rows and columns) is given, the spacing for ``spacing_mm``.
    """
    applied: dict[str, Any] = {"input_shape": list(values.shape)}
    if spec.spacing_mm is not None:
        source = pixel_spacing or (pixel_spacing_mm(ds) if ds is not None else None)
        if source is None:
            raise InvalidDicom("this model resamples to a pixel spacing; the instance has no (0028,0030) Pixel Spacing")
        target = tuple(spec.spacing_mm[-2:])
        _check_output_size(
            [output_length(n, s_in, s_out) for n, s_in, s_out in zip(values.shape[:2], source, target)],
            current_limits().max_pixels_per_frame,
        )
        values = resample_to_spacing(values, source, target)
        applied["resampled_to_spacing_mm"] = list(target)
    if spec.crop_foreground is not None:
        spacing = tuple(spec.spacing_mm[-2:]) if spec.spacing_mm is not None else (
            pixel_spacing or (pixel_spacing_mm(ds) if ds is not None else None) or (1.0, 1.0)
        )
        box = foreground_box(values, spec.crop_foreground, spacing)
        if box is not None:
            values = values[box]
        applied["cropped_to_foreground"] = None if box is None else [[b.start, b.stop] for b in box]
    values = _intensity(values, spec, ds, applied, inplace=False)
    if spec.output_size is not None:
        if spec.size_mode == "resize":
            values = resize_with_mode(values, spec.output_size, spec.resize_mode)
            applied["resized_to"] = list(spec.output_size)
            if spec.resize_mode != "linear":
                applied["resize_mode"] = spec.resize_mode
        else:
            values, _ = crop_or_pad(values, spec.output_size, (0, 1), spec.pad_value)
            applied["cropped_or_padded_to"] = list(spec.output_size)
    if spec.stats_grid == "output":
        values = _normalization(values, spec, applied, inplace=False)  # may still be the caller's array
    array = np.ascontiguousarray(image_to_chw(values, spec.channels), dtype=spec.dtype)
    _check_finite(array)
    applied["output_shape"] = list(array.shape)
    return PreparedInput(array=array, applied=applied)


def preprocess_instance(source: Dataset | Instance, spec: PreprocessingSpec) -> PreparedInput:
    """Full 2D path for a single-frame instance: grayscale, or RGB for a 3-channel model.

    ``source`` is a parsed Dataset or an :class:`Instance` from :func:`open_instance`, whose
    uncompressed pixels stay a view on the uploaded bytes (no copy, no pydicom decoder run).
    Pixels are decoded before the modality is checked: a broken file is reported as broken
    whatever model it was sent to.
    """
    instance = open_instance(source)
    ds = check_header(instance.header)
    frames = instance.pixels.number_of_frames
    stored = decode_frame(instance, 0) if frames == 1 else None
    modality = check_modality(ds, spec)
    if spec.volumetric:
        raise InconsistentSeries(
            "this model takes a whole series (a 3D volume or 2.5D stacks of adjacent slices); "
            "send all instances of the series"
        )
    if stored is None:
        raise InvalidDicom(
            f"this model takes one single-frame image; the instance has {frames} frames "
            f"of {instance.pixels.rows}x{instance.pixels.columns}"
        )
    color = is_color(ds)
    if stored.ndim != (3 if int(ds.get("SamplesPerPixel", 1)) > 1 else 2):
        raise InvalidDicom(
            f"this model takes one single-frame image; the instance's pixel array has "
            f"shape {tuple(stored.shape)} ({int(ds.get('NumberOfFrames', 1) or 1)} frames, "
            f"{int(ds.get('SamplesPerPixel', 1))} samples per pixel)"
        )
    _check_color(color, spec, ds)
    applied_extra: dict[str, Any] = {}
    if color:
        values = to_rgb(stored, ds).astype(np.float32)
    else:
        values = to_modality_values(ds, stored)
        mask = padding_mask(ds, stored)
        if mask is not None:
            fill_padding(values, mask)
            applied_extra["padding_pixels"] = int(np.count_nonzero(mask))
        if spec.suv is not None:
            factor = suv_bw_factor(ds)
            values *= np.float32(factor)
            applied_extra["suv_bw_factor"] = factor
    prepared = prepare_slice(values, spec, ds)
    prepared.applied.update(
        {
            "modality": modality,
            "rescale_slope": float(ds.get("RescaleSlope", 1.0)),
            "rescale_intercept": float(ds.get("RescaleIntercept", 0.0)),
            "photometric_interpretation": str(ds.get("PhotometricInterpretation", "")),
            "transfer_syntax": str(ds.file_meta.TransferSyntaxUID),
            **applied_extra,
        }
    )
    return prepared


def preprocess_series(sources: Sequence[InstanceSource] | SeriesPlan, spec: PreprocessingSpec) -> PreparedInput:
    """Full series path: instances of one series (Datasets, Part 10 bytes or paths; or one
    multi-frame instance), or the :class:`SeriesPlan` a caller already made of them →
    [C, D, H, W] for ``CDHW``, or [D, C, H, W] — one 2D/2.5D item per slice — for ``CHW``,
    with the voxels' :class:`VolumeGeometry`.

    Raises :class:`InconsistentSeries` for instances that do not form one regular volume
    (several series, mixed orientation or size, duplicate positions, missing slices).
    """
    plan = sources if isinstance(sources, SeriesPlan) else plan_series(sources)
    return finish_volume(load_series_volume(plan, spec), spec, keep_values=False)


@dataclass(frozen=True)
class SeriesVolume:
    """A series as modality values (HU, SUV, signal) on the grid a spec asks for —
    reoriented and resampled to ``spacing_mm`` — before any intensity step or resize: what
    every stage of a cascade starts from. ``values`` is (D, H, W) float32 (or (D, H, W, 3)
    RGB), ``affine_lps`` maps its (d, h, w, 1) to LPS mm, ``reference`` is the middle frame's
    header (VOI, MONOCHROME1), ``source`` the series as sent."""

    values: np.ndarray
    affine_lps: np.ndarray
    applied: dict[str, Any]
    reference: Dataset
    source: VolumeGeometry


def load_series_volume(plan: SeriesPlan, spec: PreprocessingSpec) -> SeriesVolume:
    """Decode, apply the Modality LUT / SUV, reorient and resample a planned series as
    ``spec`` asks (its ``orientation`` and ``spacing_mm``; nothing of its intensity or size)."""
    reference = plan.frames[len(plan.frames) // 2].header
    modality = check_modality(plan.frames[0].instance.header, spec)
    _check_color(plan.is_color, spec, reference)
    if plan.has_gap:
        raise InconsistentSeries(
            "; ".join(w.message for w in plan.warnings if w.code == "gap") + " — send the complete series"
        )
    applied: dict[str, Any] = {
        "modality": modality,
        "instances": len({id(f.instance) for f in plan.frames}),
        "input_shape": list(plan.shape),
        "input_spacing_mm": [round(s, 6) for s in plan.spacing_mm],
        "input_orientation": axis_codes(plan.affine_lps),
        "series_warnings": [{"code": w.code, "message": w.message} for w in plan.warnings],
        "transfer_syntaxes": sorted({str(f.instance.transfer_syntax) for f in plan.frames}),
    }
    scales = _suv_scales(plan, spec, applied)
    turn = reorientation(plan.affine_lps, spec.orientation) if spec.orientation else Reorientation((0, 1, 2), (False, False, False))
    if spec.spacing_mm is not None:
        volume, affine = _load_resampled(plan, spec, turn, scales)
        applied["resampled_to_spacing_mm"] = [round(s, 6) for s in spacing_of(affine)]
    else:
        if not plan.uniform:
            raise InconsistentSeries(
                "; ".join(w.message for w in plan.warnings if w.code == "non_uniform_spacing")
                + " — this model does not resample slices (no spacing_mm), so it needs evenly spaced slices"
            )
        volume = turn.apply(load_volume(plan.frames, scales))
        affine = turn.apply_affine(plan.affine_lps, plan.shape)
    source = VolumeGeometry(
        affine_lps=plan.affine_lps, spacing_mm=plan.spacing_mm, shape=plan.shape, orientation=axis_codes(plan.affine_lps)
    )
    return SeriesVolume(volume, affine, applied, reference, source)


def finish_volume(
    base: SeriesVolume,
    spec: PreprocessingSpec,
    *,
    region: tuple[slice, slice, slice] | None = None,
    localiser_percentiles: tuple[float, float] | None = None,
    keep_values: bool = True,
) -> PreparedInput:
    """The rest of the series path on a loaded volume: crop to ``region`` (index slices of
    ``base``'s grid: a cascade's stage on what its localiser found) or to the foreground →
    intensity → output_size → layout and dtype. ``keep_values`` leaves ``base.values``
    untouched (a cascade prepares several stages from it); ``localiser_percentiles`` feed the
    ``clip_percentiles`` steps taken ``of="localiser"``."""
    applied = dict(base.applied)
    volume, affine = base.values, base.affine_lps
    if region is not None:
        volume, affine = _crop(volume, affine, region)
        applied["cropped_to_region"] = [[r.start, r.stop] for r in region]
    if spec.crop_foreground is not None:
        box = foreground_box(volume, spec.crop_foreground, spacing_of(affine))
        if box is not None:
            volume, affine = _crop(volume, affine, box)
        applied["cropped_to_foreground"] = None if box is None else [[b.start, b.stop] for b in box]
    # with keep_values, each step copies when it first writes (a resize already makes a new array)
    volume = _intensity(volume, spec, base.reference, applied, inplace=not keep_values, localiser_percentiles=localiser_percentiles)
    volume, affine = _fit_output_size(volume, affine, spec, applied)
    if spec.stats_grid == "output":
        shared = keep_values and np.may_share_memory(volume, base.values)
        volume = _normalization(volume, spec, applied, inplace=not shared, localiser_percentiles=localiser_percentiles)
    if spec.layout == "CDHW":
        array = volume_to_cdhw(volume, spec.channels)
    else:
        array = volume_to_slices(volume, spec.channels, spec.stack_slices)
    array = np.ascontiguousarray(array, dtype=spec.dtype)
    _check_finite(array)
    geometry = VolumeGeometry(
        affine_lps=affine, spacing_mm=spacing_of(affine), shape=tuple(volume.shape[:3]), orientation=axis_codes(affine)  # type: ignore[arg-type]
    )
    applied.update({"output_shape": list(array.shape), **geometry.to_dict()})
    return PreparedInput(array=array, applied=applied, geometry=geometry, source_geometry=base.source)


def _crop(volume: np.ndarray, affine: np.ndarray, box: tuple[slice, ...]) -> tuple[np.ndarray, np.ndarray]:
    """``volume[box]`` (a view) and the affine of its voxels."""
    for axis, part in enumerate(box):
        affine = index_map_affine(affine, axis, float(part.start or 0), 1.0)
    return volume[tuple(box)], affine


def _check_color(color: bool, spec: PreprocessingSpec, ds: Dataset) -> None:
    if color and spec.channels == 1:
        raise InvalidDicom(
            "this model takes grayscale images; the instance is color (0028,0004) "
            f"{str(ds.get('PhotometricInterpretation', '')).strip()}"
        )


def _suv_scales(plan: SeriesPlan, spec: PreprocessingSpec, applied: dict[str, Any]) -> list[float] | None:
    if spec.suv is None:
        return None
    factors = {id(f.instance): suv_bw_factor(f.instance.header) for f in plan.frames}
    applied["suv_bw_factor"] = sorted(set(factors.values()))
    return [factors[id(f.instance)] for f in plan.frames]


def _load_resampled(
    plan: SeriesPlan, spec: PreprocessingSpec, turn: Reorientation, scales: list[float] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Stream the frames through the resampler in their native (slice, row, column) axes,
    each axis walked in its target direction, then permute to the target orientation."""
    assert spec.spacing_mm is not None
    target = dict(zip(range(3 - len(spec.spacing_mm), 3), spec.spacing_mm))
    native_target: dict[int, float] = {turn.source_axes[t]: s for t, s in target.items()}
    native_flip = {turn.source_axes[t]: turn.flips[t] for t in range(3)}
    if 0 not in native_target and not plan.uniform:
        raise InconsistentSeries(
            "slices are unevenly spaced and this model's spacing_mm does not resample the slice axis"
        )
    taps: list[AxisTaps] = []
    for axis in range(3):
        reverse = native_flip[axis]
        if axis not in native_target:
            taps.append(identity_taps(plan.shape[axis], reverse=reverse))
        elif axis == 0:
            taps.append(position_taps(plan.slice_positions_mm, plan.spacing_mm[0], native_target[0], reverse=reverse))
        else:
            taps.append(spacing_taps(plan.shape[axis], plan.spacing_mm[axis], native_target[axis], reverse=reverse))
    _check_output_size([t.size for t in taps], current_limits().max_voxels_per_request)
    volume = load_resampled(plan.frames, *taps, scales)
    affine = plan.affine_lps
    for axis, axis_taps in enumerate(taps):
        affine = index_map_affine(affine, axis, axis_taps.start, axis_taps.step)
    permute = Reorientation(turn.source_axes, (False, False, False))
    return permute.apply(volume), permute.apply_affine(affine, volume.shape[:3])


def _check_output_size(shape: Sequence[int], limit: int) -> None:
    """Refuse a resampling whose output would exceed ``limit`` samples, before allocating it
    (a sane-looking spacing over a large extent still asks for a huge grid)."""
    if int(np.prod(shape, dtype=np.float64)) > limit:
        raise InputTooLarge(
            f"resampling to the model's spacing would make {'x'.join(map(str, shape))} samples; at most {limit} are accepted"
        )


def _check_finite(array: np.ndarray) -> None:
    """A model input holds finite numbers only: NaN or infinity (from values no header check
    could see, such as a Modality LUT table) is the input's fault and must not reach Triton.
    A float32 sum decides almost always, in one pass that converts nothing: it is finite only
    when every element is. Only when it is not (a NaN, an infinity, or finite values whose sum
    passes float32's range) is the float64 sum taken, finite exactly when every element is
    (1.9x faster than the float64 sum alone on a 200x240x240 volume)."""
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is an answer here, not news
        if np.isfinite(array.sum(dtype=np.float32)):
            return
    if not np.isfinite(array.sum(dtype=np.float64)):
        raise InvalidDicom("the pixel values become NaN or infinite under the instance's rescale or LUT")


def _intensity(
    values: np.ndarray,
    spec: PreprocessingSpec,
    ds: Dataset | None,
    applied: dict[str, Any],
    *,
    inplace: bool,
    localiser_percentiles: tuple[float, float] | None = None,
) -> np.ndarray:
    """clip → window (MONOCHROME1 flips the windowed output) or normalize / normalize_steps
    (MONOCHROME1 flips the values first), on float32 modality values; the normalization only
    when its statistics are taken on the input grid (``stats_grid="input"``), else the caller
    runs :func:`_normalization` after the resize. The modality values' statistics are
    recorded first (``input_statistics``, for the model's input quality gate)."""
    applied["input_statistics"] = input_statistics(values)
    monochrome1 = ds is not None and is_monochrome1(ds)
    if monochrome1 and spec.window is None:
        values = invert_monochrome1(values, ds)  # type: ignore[arg-type]
        inplace = True
        applied["monochrome1_inverted"] = True
    if spec.clip_range is not None:
        values = clip_values(values, spec.clip_range, inplace=inplace)
        inplace = True
        applied["clip_range"] = list(spec.clip_range)
    if spec.window is not None:
        window = spec.window
        if window.from_dicom and window.function is None:
            if ds is None:
                raise InvalidDicom("this model windows with the instance's own VOI LUT; no instance was given")
            values = apply_dicom_voi(values, ds, window.voi_index)
            applied["window"] = {"from_dicom": True, "voi_index": window.voi_index, "function": _dicom_voi_name(ds)}
        else:
            center, width = resolve_window(window, ds)
            function = window.applied_function or "LINEAR"
            values = apply_window(values, center, width, function, out=values if inplace else None)
            applied["window"] = {"center": center, "width": width, "function": function, "preset": window.preset}
        if monochrome1:
            values = invert_windowed_monochrome1(values, ds)  # type: ignore[arg-type]
            applied["monochrome1_inverted"] = True
    elif spec.stats_grid == "input":
        values = _normalization(values, spec, applied, inplace=inplace, localiser_percentiles=localiser_percentiles)
    return values


def _normalization(
    values: np.ndarray,
    spec: PreprocessingSpec,
    applied: dict[str, Any],
    *,
    inplace: bool,
    localiser_percentiles: tuple[float, float] | None = None,
) -> np.ndarray:
    """``normalize`` or the ``normalize_steps`` chain on whatever grid the caller is at, the
    statistics recorded in ``applied`` with the grid they were taken on."""
    if spec.normalize is not None:
        values, stats = normalize(values, spec.normalize, inplace=inplace)
        applied["normalize"] = {"method": spec.normalize.method, **stats}
    elif spec.normalize_steps:
        values, record = apply_steps(values, spec.normalize_steps, inplace=inplace, localiser_percentiles=localiser_percentiles)
        applied["normalize_steps"] = record
    else:
        return values
    if spec.stats_grid != "input":
        applied["stats_grid"] = spec.stats_grid
    return values


def _dicom_voi_name(ds: Dataset) -> str:
    if ds.get("VOILUTSequence"):
        return "VOI_LUT_SEQUENCE"
    return str(ds.get("VOILUTFunction", "LINEAR")).strip() or "LINEAR"


def _fit_output_size(
    volume: np.ndarray, affine: np.ndarray, spec: PreprocessingSpec, applied: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    if spec.output_size is None:
        return volume, affine
    axes = (0, 1, 2) if spec.layout == "CDHW" else (1, 2)
    if spec.size_mode == "resize":
        sizes_in = [volume.shape[a] for a in axes]
        volume = resize_with_mode(volume, spec.output_size, spec.resize_mode, axes=axes)
        for axis, n_in, n_out in zip(axes, sizes_in, spec.output_size):
            affine = index_map_affine(affine, axis, *resize_grid(n_in, n_out, spec.resize_mode))
        applied["resized_to"] = list(spec.output_size)
        if spec.resize_mode != "linear":
            applied["resize_mode"] = spec.resize_mode
    else:
        volume, starts = crop_or_pad(volume, spec.output_size, axes, spec.pad_value)
        for axis, start in zip(axes, starts):
            affine = index_map_affine(affine, axis, float(start), 1.0)
        applied["cropped_or_padded_to"] = list(spec.output_size)
    return volume, affine
