"""The input quality gate: every prepared input against the ranges its model's export saw.

A card exported with a gate carries ``input_quality`` (:mod:`export.quality`): per input,
accepted ``[low, high]`` per quality feature (:func:`preprocessing.quality.quality_features`)
and an ``action``. Each task calls :func:`check_input` right after preprocessing, before
Triton: an input outside a range is answered 422 ``input_out_of_range``
(:class:`~gateway.errors.InputOutOfRange`) under ``reject``, or goes on with a warning under
``warn`` — recorded in the input's ``applied`` record (``quality_warnings``) and lifted into
the JSON answer's ``warnings`` by :func:`answer_warnings`. A blank input (its modality values
without spread or without foreground) is always outside when a gate exists, whatever the
ranges say. Every finding is counted in ``medserve_input_quality_total``.

Messages name the feature and the accepted range; they quote the input's own value only for
intensity features (a number of HU or SUV identifies no one), never a header value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset

from contract import ModelCard
from preprocessing.quality import quality_features

from .audit import AuditRecord
from .errors import InputOutOfRange
from .metrics import INPUT_QUALITY

__all__ = ["WARNINGS_KEY", "QualityWarning", "answer_warnings", "check_input", "check_slices"]

#: Where a warned input's findings are kept in its ``applied`` record.
WARNINGS_KEY = "quality_warnings"

#: What each feature is, for messages; the intensity ones may quote the input's value.
_INTENSITY = {
    "p1": "1st percentile of the modality values",
    "p99": "99th percentile of the modality values",
    "mean": "mean of the modality values",
    "std": "standard deviation of the modality values",
    "foreground_fraction": "fraction of foreground voxels (above 1% of the p1-p99 range)",
}
_GEOMETRY = {
    "spacing_min_mm": "smallest voxel spacing (mm)",
    "spacing_max_mm": "largest voxel spacing (mm)",
    "extent_min_mm": "smallest extent (mm)",
    "extent_max_mm": "largest extent (mm)",
}


@dataclass(frozen=True)
class QualityWarning:
    """One input outside one accepted range: the ``feature`` and a message naming it."""

    feature: str
    message: str
    code: str = "input_out_of_range"

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message, "feature": self.feature}


def _findings(card: ModelCard, applied: Mapping[str, Any], header: Dataset | None, input_name: str) -> list[QualityWarning]:
    gate = card.input_quality
    if not gate or not gate.get("enabled", True):
        return []
    ranges: Mapping[str, Sequence[float]] = (gate.get("inputs") or {}).get(input_name) or {}
    features = quality_features(applied, header)
    findings = []
    blank = features.get("std") == 0.0 or features.get("foreground_fraction") == 0.0
    if blank:
        findings.append(QualityWarning(
            "std" if features.get("std") == 0.0 else "foreground_fraction",
            f"input {input_name!r} is blank: its modality values have "
            + ("no spread (standard deviation 0)" if features.get("std") == 0.0 else "no foreground")
            + _accepted(ranges, "std" if features.get("std") == 0.0 else "foreground_fraction"),
        ))
    for feature, bounds in ranges.items():
        value = features.get(feature)
        if value is None or (blank and feature in ("std", "foreground_fraction")):
            continue
        low, high = float(bounds[0]), float(bounds[1])
        if low <= value <= high:
            continue
        if feature in _INTENSITY:
            what = f"the {_INTENSITY[feature]} is {value:g}; accepted [{low:g}, {high:g}]"
        else:
            what = f"the {_GEOMETRY.get(feature, feature)} is {'below' if value < low else 'above'} the accepted range [{low:g}, {high:g}]"
        findings.append(QualityWarning(feature, f"input {input_name!r}: {what}"))
    return findings


def _accepted(ranges: Mapping[str, Sequence[float]], feature: str) -> str:
    bounds = ranges.get(feature)
    return f"; accepted {feature} [{float(bounds[0]):g}, {float(bounds[1]):g}]" if bounds else ""


def _act(card: ModelCard, findings: list[QualityWarning], applied: dict[str, Any], audit: AuditRecord | None) -> list[QualityWarning]:
    """Count the findings and note their features in the audit record; raise under
    ``reject``; record them in ``applied`` under ``warn``."""
    if not findings:
        return []
    action = str((card.input_quality or {}).get("action", "warn"))
    for finding in findings:
        INPUT_QUALITY.labels(card.name, finding.feature, action).inc()
        if audit is not None and finding.feature not in audit.input_quality:
            audit.input_quality.append(finding.feature)
    if action == "reject":
        raise InputOutOfRange(
            "; ".join(f.message for f in findings)
            + f" — model {card.name!r} was not validated on such inputs (input quality gate, see its export report)"
        )
    applied[WARNINGS_KEY] = [f.to_dict() for f in findings]
    return findings


def check_input(
    card: ModelCard, applied: dict[str, Any], header: Dataset | None = None, *, input_name: str | None = None,
    audit: AuditRecord | None = None,
) -> list[QualityWarning]:
    """Check one prepared input (its ``applied`` record; ``header`` gives a 2D instance's pixel
    spacing) against the gate of ``card``'s input ``input_name`` (default: the first); the
    features found outside are noted in ``audit``."""
    name = input_name or card.inputs[0].name
    return _act(card, _findings(card, applied, header, name), applied, audit)


def check_slices(
    card: ModelCard, applied: Sequence[dict[str, Any]], headers: Sequence[Dataset], *, audit: AuditRecord | None = None
) -> list[QualityWarning]:
    """A series segmented slice by slice: a feature is outside when it is outside on *every*
    slice (a slice above the head is blank in a normal series; a blank series is blank on all).
    Findings are those of the first slice, recorded in the first slice's ``applied`` (the one
    the answer reports)."""
    name = card.inputs[0].name
    per_slice = [_findings(card, a, h, name) for a, h in zip(applied, headers)]
    everywhere = set.intersection(*({f.feature for f in found} for found in per_slice)) if per_slice else set()
    return _act(card, [f for f in per_slice[0] if f.feature in everywhere] if per_slice else [], applied[0] if applied else {}, audit)


def answer_warnings(records: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """The warnings of an answer, once each, from the ``applied`` records of its inputs (a
    multi-input record holds one record per input name)."""
    seen: dict[tuple[str, str], dict[str, str]] = {}
    for record in records:
        nested = [v for v in record.values() if isinstance(v, Mapping)] if WARNINGS_KEY not in record else []
        for item in [record, *nested]:
            for warning in item.get(WARNINGS_KEY, []):
                seen.setdefault((warning["code"], warning["message"]), warning)
    return list(seen.values())
