"""The issue's performance targets, evaluated on measured cells as ratios against the
baseline or against Triton's compute time.

Targets are judged in the report only, never asserted by tests: a target that is not met is
a finding, not a failure.
"""

from __future__ import annotations

from typing import Any

from .measure import Cell
from .variants import CLASSIFIER, MODELS, SEGMENTER_3D


def evaluate_targets(cells: list[Cell]) -> list[dict[str, Any]]:
    """The issue's targets as measured ratios (met: True/False, or None when not measured)."""
    index = {(c.model, c.variant, c.concurrency): c for c in cells}
    targets: list[dict[str, Any]] = []
    for model in MODELS:
        base = index.get((model, "a", 16))
        for variant, factor in (("c", 1.5), ("d", 4.0)):
            cell = index.get((model, variant, 16))
            if base is None or cell is None or not base.load["throughput_rps"]:
                continue
            ratio = cell.load["throughput_rps"] / base.load["throughput_rps"]
            p99_ok = cell.load["p99_ms"] is not None and base.load["p99_ms"] is not None and cell.load["p99_ms"] <= base.load["p99_ms"]
            targets.append({
                "target": f"{model}: ({variant}) throughput ≥ {factor:g}× (a) at concurrency 16",
                "measured": f"{ratio:.2f}×", "value": round(ratio, 3), "met": ratio >= factor,
            })
            targets.append({
                "target": f"{model}: ({variant}) p99 ≤ (a) p99 at concurrency 16",
                "measured": f"{cell.load['p99_ms']:.1f} ms vs {base.load['p99_ms']:.1f} ms",
                "value": round(cell.load["p99_ms"] / base.load["p99_ms"], 3), "met": p99_ok,
            })
    for variant in ("c", "d"):
        cell = index.get((CLASSIFIER, variant, 1))
        if cell is not None and cell.stages.get("triton", {}).get("compute_infer_ms") and cell.load["p50_ms"]:
            compute = cell.stages["triton"]["compute_infer_ms"]
            share = 1 - compute / cell.load["p50_ms"]
            targets.append({
                "target": f"{CLASSIFIER} ({variant}) at concurrency 1: time outside Triton compute ≤ 20% of p50",
                "measured": f"{share:.0%} (p50 {cell.load['p50_ms']:.2f} ms, compute_infer {compute:.2f} ms)",
                "value": round(share, 3), "met": share <= 0.20,
            })
    for variant in ("c", "d"):
        cell = index.get((SEGMENTER_3D, variant, 1))
        if cell is not None and cell.stages.get("triton", {}).get("compute_infer_ms") and cell.load["p50_ms"]:
            compute = cell.stages["triton"]["compute_infer_ms"] * cell.stages["triton"]["requests"] / max(cell.load["requests"], 1)
            ratio = cell.load["p50_ms"] / compute
            targets.append({
                "target": f"{SEGMENTER_3D} ({variant}) at concurrency 1: end-to-end p50 ≤ 1.5× Triton compute",
                "measured": f"{ratio:.2f}× (p50 {cell.load['p50_ms']:.1f} ms, compute_infer {compute:.1f} ms per request)",
                "value": round(ratio, 3), "met": ratio <= 1.5,
            })
    return targets
