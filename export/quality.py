"""The input quality gate of a model, derived from what export saw.

Every prepared validation and calibration case carries its quality features
(:func:`preprocessing.quality.quality_features`: the modality values' p1, p99, mean, std and
foreground fraction; the smallest and largest spacing and extent in mm). The gate accepts,
per input and feature, the range those cases span widened by the spec's ``margin`` m:

- spreads and sizes (``std``, ``spacing_*_mm``, ``extent_*_mm``): [min / (1 + m), max · (1 + m)];
- ``foreground_fraction``: [min / (1 + m), 1];
- locations (``p1``, ``p99``, ``mean``): [min − m · span, max + m · span], span the intensity
  range seen (largest p99 − smallest p1; 1 when every case was constant).

The document goes into the card as ``input_quality`` and is checked by ``gateway/quality.py``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .data import SourceInfo
from .spec import QualityGateSpec

__all__ = ["LOCATION_FEATURES", "SCALE_FEATURES", "derive_gate", "feature_ranges"]

#: Features whose accepted range is widened by a factor (they are > 0 on a usable input).
SCALE_FEATURES = ("std", "spacing_min_mm", "spacing_max_mm", "extent_min_mm", "extent_max_mm")
#: Features whose accepted range is widened by a share of the intensity range seen.
LOCATION_FEATURES = ("p1", "p99", "mean")


def _round(value: float) -> float:
    return float(f"{value:.6g}")


def feature_ranges(cases: Sequence[Mapping[str, float]], margin: float) -> dict[str, list[float]]:
    """Accepted [low, high] per feature from the features of ``cases`` (see the module doc).
    A feature missing from any case (a 2D image without pixel spacing) gets no range."""
    if not cases:
        return {}
    common = set.intersection(*(set(case) for case in cases))
    seen = {name: [float(case[name]) for case in cases] for name in common}
    ranges: dict[str, list[float]] = {}
    for name in SCALE_FEATURES:
        if name in seen:
            ranges[name] = [min(seen[name]) / (1 + margin), max(seen[name]) * (1 + margin)]
    if "foreground_fraction" in seen:
        ranges["foreground_fraction"] = [min(seen["foreground_fraction"]) / (1 + margin), 1.0]
    if "p1" in seen and "p99" in seen:
        span = (max(seen["p99"]) - min(seen["p1"])) or 1.0
        for name in LOCATION_FEATURES:
            if name in seen:
                ranges[name] = [min(seen[name]) - margin * span, max(seen[name]) + margin * span]
    return {name: [_round(low), _round(high)] for name, (low, high) in sorted(ranges.items())}


def derive_gate(gate: QualityGateSpec, sources: Iterable[Mapping[str, Sequence[SourceInfo]]]) -> dict[str, Any] | None:
    """The card's ``input_quality`` document from the prepared case sets' ``sources`` (the
    validation set's, the calibration set's, ...), or None when the gate is disabled.

    ``{"action", "margin", "cases": {input: n}, "inputs": {input: {feature: [low, high]}}}``
    """
    if not gate.enabled:
        return None
    by_input: dict[str, list[Mapping[str, float]]] = {}
    for case_set in sources:
        for name, infos in case_set.items():
            by_input.setdefault(name, []).extend(info.quality for info in infos if info.quality)
    return {
        "action": gate.action,
        "margin": gate.margin,
        "cases": {name: len(cases) for name, cases in by_input.items()},
        "inputs": {name: feature_ranges(cases, gate.margin) for name, cases in by_input.items()},
    }

