"""Intensity steps after the Modality LUT: clipping and normalization (MR, US, PET).

Windows (CT) live in :mod:`preprocessing.pixels`; these are for images without an absolute
scale, following the definitions of MONAI's ``NormalizeIntensity`` and
``ScaleIntensityRangePercentiles`` so that models trained with MONAI see the same values.
Statistics are accumulated in float64; arrays stay float32.
"""

from __future__ import annotations

import numpy as np

from .pixels import apply_window
from .spec import NormalizeSpec, NormalizeStep


def clip_values(
    values: np.ndarray, clip_range: tuple[float | None, float | None], *, inplace: bool = False
) -> np.ndarray:
    """Clip modality values (HU, SUV…) to [lower, upper]; either bound may be None."""
    lower, upper = clip_range
    return np.clip(values, lower, upper, out=values if inplace else None)


def normalize(
    values: np.ndarray, spec: NormalizeSpec, *, inplace: bool = False, ddof: int = 0
) -> tuple[np.ndarray, dict[str, float]]:
    """Z-score or percentile scaling of ``values`` (float32); returns the array and the
    statistics used, for the record of what was applied.

    ``zscore``: (v - mean) / std; with ``nonzero`` the statistics come from, and only apply
    to, voxels != 0 (background stays 0). A constant image is only shifted.
    ``percentile``: percentile ``lower`` → 0 and ``upper`` → 1, clipped to [0, 1] if ``clip``.
    """
    out = values if inplace else values.astype(np.float32, copy=True)
    mask = out != 0 if spec.nonzero else None
    sample = out[mask] if mask is not None else out
    if sample.size == 0:
        return out, {}
    if spec.method == "zscore":
        mean = float(sample.mean(dtype=np.float64))
        std = float(sample.std(dtype=np.float64, ddof=ddof)) if sample.size > ddof else 0.0
        scale = 1.0 / std if std > 0 else 1.0
        if mask is None:
            out -= np.float32(mean)
            out *= np.float32(scale)
        else:
            out[mask] = (out[mask] - np.float32(mean)) * np.float32(scale)
        return out, {"mean": mean, "std": std}
    low, high = (float(v) for v in np.percentile(sample, [spec.lower, spec.upper]))
    scale = 1.0 / (high - low) if high > low else 1.0
    out -= np.float32(low)
    out *= np.float32(scale)
    if spec.clip:
        np.clip(out, 0.0, 1.0, out=out)
    return out, {"lower_value": low, "upper_value": high}


def apply_steps(
    values: np.ndarray,
    steps: tuple[NormalizeStep, ...],
    *,
    inplace: bool = False,
    localiser_percentiles: tuple[float, float] | None = None,
) -> tuple[np.ndarray, list[dict[str, float | str]]]:
    """Run an ordered ``normalize_steps`` chain on float32 ``values``; returns the array and,
    per step, its op and the statistics it used (percentile values, mean and std), for the
    record of what was applied. Each step sees the previous one's output, so "clip to the
    0.5/99.5 percentiles, then z-score" takes the z-score's statistics on the clipped image,
    as a MONAI ``Compose`` of ``ClipIntensityPercentiles`` and ``NormalizeIntensity`` does.

    ``localiser_percentiles`` are the (lower, upper) values a cascade's localiser computed: a
    ``clip_percentiles`` step with ``of="localiser"`` clips to them instead of its own (and,
    run outside a cascade, falls back to its own image, which the record says).
    """
    out = values if inplace else values.astype(np.float32, copy=True)
    record: list[dict[str, float | str]] = []
    for step in steps:
        entry: dict[str, float | str] = {"op": step.op}
        if step.op == "clip":
            np.clip(out, step.low, step.high, out=out)
        elif step.op == "clip_percentiles":
            if step.of == "localiser" and localiser_percentiles is not None:
                low, high = localiser_percentiles
                np.clip(out, np.float32(low), np.float32(high), out=out)
                entry.update(lower_value=low, upper_value=high, of="localiser")
            else:
                sample = out[out != 0] if step.nonzero else out
                if sample.size:
                    low, high = (float(v) for v in np.percentile(sample, [step.low, step.high]))
                    np.clip(out, np.float32(low), np.float32(high), out=out)
                    entry.update(lower_value=low, upper_value=high)
        elif step.op == "zscore":
            out, stats = normalize(out, NormalizeSpec(method="zscore", nonzero=step.nonzero), inplace=True, ddof=step.ddof)
            entry.update(stats)
        elif step.op == "scale_shift":
            out *= np.float32(step.scale)
            out += np.float32(step.shift)
        else:  # window
            out = apply_window(out, float(step.center), float(step.width), "LINEAR", out=out)  # type: ignore[arg-type]
        record.append(entry)
    return out, record


def clip_percentile_values(record: list[dict[str, float | str]]) -> tuple[float, float] | None:
    """The (lower, upper) values of the first ``clip_percentiles`` step of an ``apply_steps``
    record: what a cascade's localiser hands its later stages."""
    for entry in record:
        if entry.get("op") == "clip_percentiles" and "lower_value" in entry:
            return float(entry["lower_value"]), float(entry["upper_value"])
    return None
