"""Compare an artifact's outputs with PyTorch's on the same preprocessed inputs.

Float outputs: max absolute and max relative difference, gated on an absolute tolerance.
Integer label outputs (argmax inside the graph): the fraction of values that differ, gated on
``tolerance.label_mismatch``, because a voxel whose two class scores tie within float error
may legitimately flip. NaN or Inf, or a shape that differs, always fails.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ExportFailed
from .spec import OutputSpec

__all__ = ["OutputDifference", "compare_outputs", "onnx_outputs", "ort_session"]


@dataclass(frozen=True)
class OutputDifference:
    """How far one output of an artifact is from PyTorch over the verification inputs;
    ``mismatch_fraction`` is set for integer label outputs only."""

    name: str
    max_abs: float
    max_rel: float
    mismatch_fraction: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def ort_session(path: Path, threads: int = 0):
    """An onnxruntime CPU session with full graph optimization; ``threads`` 0 = all cores."""
    import onnxruntime as ort

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
) -> list[OutputDifference]:
    """Differences per output; a tolerance of None records differences without gating them
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
        if got.dtype.kind in "iu":
            mismatch = float((delta > 0).mean()) if delta.size else 0.0
            differences.append(OutputDifference(output.name, max_abs, max_rel, mismatch))
            if label_mismatch is not None and mismatch > label_mismatch:
                raise ExportFailed(
                    f"{artifact} output {output.name!r}: {mismatch:.2%} of labels differ from PyTorch "
                    f"(tolerance {label_mismatch:.2%})"
                )
            continue
        differences.append(OutputDifference(output.name, max_abs, max_rel))
        if tolerance_abs is not None and max_abs > tolerance_abs:
            raise ExportFailed(
                f"{artifact} output {output.name!r} differs from PyTorch by up to {max_abs:.3g} "
                f"(tolerance {tolerance_abs:.3g}, max relative {max_rel:.3g})"
            )
    return differences
