"""Compare an artifact's outputs with PyTorch's on the same preprocessed inputs, by task.

Segmentation outputs (``segmentation_probabilities``, ``segmentation_labels``) are judged by
their labels — the argmax over the class axis of probabilities, the values of a label map:

- **label disagreement**, the fraction of voxels whose label differs from PyTorch's, at most
  ``tolerance.label_mismatch`` (default 1e-3);
- **per-class Dice** of each foreground class's voxels against PyTorch's, pooled over the
  validation cases, at least ``tolerance.min_class_dice`` (default 0.99).

Their float max abs is recorded but does not decide: a correct export of an InstanceNorm
network moves probabilities by float rounding that grows with the volume (a real 3D network:
max abs 2.6e-3 at 256³ and 1 label in 8.4 million flipped, 1.2e-7; the test's MONAI
InstanceNorm UNet with confident logits, onnxruntime 1.x CPU: max abs 2.0e-4 at 2 × 48³ —
twice the 1e-4 float tolerance — and 0 labels flipped), and at 256³ no absolute tolerance
both passes it and still checks anything. The defaults stay far from what a broken export
does (``tests/export/test_verify_networks.py``): the same UNet with 5 % noise on its head's
weights in the ONNX graph disagrees on 1.3 % of the voxels (class Dice 0.981), 20 % noise on
10.8 % (Dice 0.33); one exported from another checkpoint on 68 % (Dice 0.18-0.38).

Every other float output (class probabilities or logits, activation maps) is gated on max
absolute difference (``tolerance.fp32_abs`` / ``fp16_abs``). A variant without a tolerance
(INT8, gated on the task metric instead) has everything recorded and nothing decided here.
NaN or Inf, or a shape that differs, always fails. Each :class:`OutputDifference` says in
``decided_by`` which check decided, for the export report.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from contract import OutputMeaning

from .errors import ExportFailed
from .ort_quiet import quiet_onnxruntime
from .spec import OutputSpec

__all__ = ["OutputDifference", "class_dice", "compare_outputs", "onnx_outputs", "ort_session"]


@dataclass(frozen=True)
class OutputDifference:
    """How far one output of an artifact is from PyTorch over the verification inputs.
    ``label_disagreement`` (fraction of voxels) and ``class_dice`` (foreground class name →
    Dice against PyTorch's labels) are set for segmentation outputs only; ``decided_by`` is
    the report's sentence on which check decided."""

    name: str
    max_abs: float
    max_rel: float
    label_disagreement: float | None = None
    class_dice: dict[str, float] = field(default_factory=dict)
    decided_by: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def ort_session(path: Path, threads: int = 0):
    """An onnxruntime CPU session with full graph optimization; ``threads`` 0 = all cores."""
    import onnxruntime as ort

    quiet_onnxruntime()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def onnx_outputs(path: Path, feeds: dict[str, np.ndarray], names: list[str], batch_size: int = 16) -> list[np.ndarray]:
    """onnxruntime's outputs ``names`` for ``feeds``, ``batch_size`` cases at a time."""
    session = ort_session(path)
    total = len(next(iter(feeds.values())))
    parts = [
        session.run(names, {k: v[start : start + batch_size] for k, v in feeds.items()})
        for start in range(0, total, batch_size)
    ]
    return [np.concatenate(chunks) for chunks in zip(*parts)]


def compare_outputs(
    outputs: list[OutputSpec],
    reference: list[np.ndarray],
    actual: list[np.ndarray],
    *,
    artifact: str,
    tolerance_abs: float | None,
    label_mismatch: float | None,
    min_class_dice: float | None = None,
) -> list[OutputDifference]:
    """Differences per output; tolerances of None record differences without gating them
    (INT8, which is gated on the task metric instead)."""
    differences = []
    for output, ref, got in zip(outputs, reference, actual):
        if ref.shape != got.shape:
            raise ExportFailed(f"{artifact} output {output.name!r} has shape {got.shape}, PyTorch {ref.shape}")
        if got.dtype.kind == "f" and not np.isfinite(got).all():
            raise ExportFailed(f"{artifact} output {output.name!r} contains NaN or Inf")
        delta = np.abs(got.astype(np.float64) - ref.astype(np.float64))
        rel = delta / np.maximum(np.abs(ref.astype(np.float64)), 1e-6)
        max_abs, max_rel = float(delta.max(initial=0.0)), float(rel.max(initial=0.0))
        if output.meaning.is_segmentation:
            differences.append(_compare_labels(output, ref, got, max_abs, max_rel, artifact, label_mismatch, min_class_dice))
        else:
            differences.append(_compare_floats(output, max_abs, max_rel, artifact, tolerance_abs))
    return differences


def _compare_floats(output: OutputSpec, max_abs: float, max_rel: float, artifact: str, tolerance: float | None) -> OutputDifference:
    if tolerance is None:
        return OutputDifference(output.name, max_abs, max_rel, decided_by=f"max abs {max_abs:.2e} recorded (gated on the task metric)")
    if max_abs > tolerance:
        raise ExportFailed(
            f"{artifact} output {output.name!r} differs from PyTorch by up to {max_abs:.3g} "
            f"(tolerance {tolerance:.3g}, max relative {max_rel:.3g})"
        )
    return OutputDifference(output.name, max_abs, max_rel, decided_by=f"max abs {max_abs:.2e} <= {tolerance:.0e} (decided)")


def _labels(output: OutputSpec, values: np.ndarray) -> np.ndarray:
    """The label map of a segmentation output: argmax over the class axis of probabilities."""
    return values.argmax(axis=1) if output.meaning == OutputMeaning.SEGMENTATION_PROBABILITIES else values


def class_dice(reference: np.ndarray, actual: np.ndarray, names: list[str]) -> dict[str, float]:
    """Dice of each foreground class (label 1..) of ``actual`` against ``reference``, pooled
    over every case; a class absent from both is left out (nothing to compare)."""
    count = max(len(names), int(max(reference.max(initial=0), actual.max(initial=0))) + 1)
    dice = {}
    for label in range(1, count):
        ref, got = reference == label, actual == label
        total = int(ref.sum()) + int(got.sum())
        if total:
            name = names[label] if label < len(names) else str(label)
            dice[name] = 2.0 * int(np.logical_and(ref, got).sum()) / total
    return dice


def _compare_labels(
    output: OutputSpec, ref: np.ndarray, got: np.ndarray, max_abs: float, max_rel: float,
    artifact: str, label_mismatch: float | None, min_dice: float | None,
) -> OutputDifference:
    ref_labels, got_labels = _labels(output, ref), _labels(output, got)
    disagreement = float((ref_labels != got_labels).mean()) if ref_labels.size else 0.0
    dice = class_dice(ref_labels, got_labels, output.labels)
    worst = min(dice.items(), key=lambda item: item[1], default=None)
    measured = f"label disagreement {disagreement:.1e}" + (f", least class Dice {worst[1]:.4f} ({worst[0]})" if worst else "")
    if label_mismatch is not None and disagreement > label_mismatch:
        raise ExportFailed(
            f"{artifact} output {output.name!r}: {disagreement:.2%} of labels differ from PyTorch "
            f"(tolerance {label_mismatch:.2%})"
        )
    if min_dice is not None and worst is not None and worst[1] < min_dice:
        raise ExportFailed(
            f"{artifact} output {output.name!r}: Dice of class {worst[0]!r} against PyTorch's labels is {worst[1]:.4f} "
            f"(least allowed {min_dice})"
        )
    if label_mismatch is None and min_dice is None:
        decided = f"{measured}; max abs {max_abs:.2e} recorded (gated on the task metric)"
    else:
        limits = [f"label disagreement {disagreement:.1e} <= {label_mismatch:.0e}"] if label_mismatch is not None else []
        if worst is not None and min_dice is not None:
            limits.append(f"least class Dice {worst[1]:.4f} ({worst[0]}) >= {min_dice}")
        decided = ", ".join(limits) + f" (decided); max abs {max_abs:.2e} recorded"
    return OutputDifference(output.name, max_abs, max_rel, disagreement, dice, decided)
