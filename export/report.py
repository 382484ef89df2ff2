"""The export report: what was produced, how it was verified, and how fast it runs here."""

from __future__ import annotations

import hashlib
import json
import platform
import time
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np


class StepStatus(StrEnum):
    OK = "OK"
    SKIPPED = "SKIPPED"
    FAIL = "FAIL"


@dataclass
class StepRecord:
    name: str
    status: StepStatus
    detail: str = ""
    seconds: float = 0.0


@dataclass
class VariantRecord:
    """One precision variant (fp32, int8, …) of the model."""

    precision: str
    file: str
    size_bytes: int
    max_difference: list[dict[str, Any]]
    metric_name: str
    metric: float | None
    latency_ms_p50_batch1: float
    latency_ms_p99_batch1: float
    throughput_per_s_batch8: float
    is_default: bool = False


@dataclass
class ExportReport:
    model: str
    task: str
    steps: list[StepRecord] = field(default_factory=list)
    variants: list[VariantRecord] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=str) + "\n"

    def to_markdown(self) -> str:
        lines = [f"# Export report: {self.model}", "", f"Task: {self.task}", "", "## Steps", ""]
        lines += ["| step | status | seconds | detail |", "|---|---|---|---|"]
        lines += [f"| {s.name} | {s.status} | {s.seconds:.1f} | {s.detail} |" for s in self.steps]
        lines += ["", "## Variants", ""]
        lines += [
            "| precision | default | file | size (MB) | max abs diff vs PyTorch | metric | p50 ms (b=1) | p99 ms (b=1) | throughput/s (b=8) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for v in self.variants:
            diff = max((d["max_abs"] for d in v.max_difference), default=float("nan"))
            metric = f"{v.metric_name} {v.metric:.4f}" if v.metric is not None else "n/a"
            lines.append(
                f"| {v.precision} | {'yes' if v.is_default else ''} | {v.file} | {v.size_bytes / 1e6:.2f} | "
                f"{diff:.2e} | {metric} | {v.latency_ms_p50_batch1:.2f} | {v.latency_ms_p99_batch1:.2f} | "
                f"{v.throughput_per_s_batch8:.1f} |"
            )
        lines += ["", "## Environment", ""] + [f"- {k}: {v}" for k, v in self.environment.items()]
        return "\n".join(lines) + "\n"

    def write(self, directory: Path) -> None:
        (directory / "export_report.json").write_text(self.to_json())
        (directory / "export_report.md").write_text(self.to_markdown())


def environment() -> dict[str, str]:
    import onnxruntime
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "machine": platform.machine(),
        "processor": platform.processor() or "unknown",
        "cpu_count": str(__import__("os").cpu_count()),
    }


def measure_onnxruntime(onnx_path: Path, feeds_batch1: dict[str, np.ndarray], repeats: int = 30) -> tuple[float, float, float]:
    """(p50 ms, p99 ms) at batch 1 and throughput (images/s) at batch 8 in onnxruntime on CPU."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    feeds_batch8 = {k: np.repeat(v, 8, axis=0) for k, v in feeds_batch1.items()}
    for _ in range(3):
        session.run(None, feeds_batch1)
        session.run(None, feeds_batch8)
    latencies = []
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(None, feeds_batch1)
        latencies.append((time.perf_counter() - start) * 1000)
    start = time.perf_counter()
    rounds = max(3, repeats // 4)
    for _ in range(rounds):
        session.run(None, feeds_batch8)
    throughput = 8 * rounds / (time.perf_counter() - start)
    return float(np.percentile(latencies, 50)), float(np.percentile(latencies, 99)), float(throughput)


def report_digest(directory: Path) -> str:
    """sha256 of the ``export_report.json`` written in ``directory``; stored in the model
    config so that a served model can be traced to the exact report that verified it."""
    return hashlib.sha256((directory / "export_report.json").read_bytes()).hexdigest()
