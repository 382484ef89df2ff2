"""The export report: what was produced, how it was verified, and how fast it runs here.

Written as ``export_report.json`` (for machines; its sha256 is stored in every written
variant's Triton config as ``export_report_digest``) and ``export_report.md`` (for people)
into every variant's model directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

__all__ = ["ExportReport", "StepRecord", "StepStatus", "VariantRecord", "VariantStatus", "environment", "report_digest"]


class StepStatus(StrEnum):
    OK = "OK"
    SKIPPED = "SKIPPED"
    FAIL = "FAIL"


class VariantStatus(StrEnum):
    WRITTEN = "written"  # verified, gated and in the repository
    REJECTED = "rejected"  # built but failed its gate; not written
    SKIPPED = "skipped"  # could not be built here (e.g. no TensorRT / GPU)


@dataclass
class StepRecord:
    name: str
    status: StepStatus
    detail: str = ""
    seconds: float = 0.0


@dataclass
class VariantRecord:
    """One precision variant: an ONNX model served by onnxruntime or a TensorRT engine."""

    precision: str
    runtime: str  # "onnxruntime" or "tensorrt"
    model_name: str  # the Triton model (directory) it belongs to
    status: VariantStatus
    reason: str = ""
    file: str | None = None  # relative to the repository
    size_bytes: int | None = None
    max_difference: list[dict[str, Any]] = field(default_factory=list)
    metric_name: str | None = None
    metric: float | None = None
    metric_drop: float | None = None  # FP32 metric minus this variant's
    latency_ms_p50_batch1: float | None = None
    latency_ms_p99_batch1: float | None = None
    throughput_per_s_batch8: float | None = None
    is_default: bool = False
    # name → value on the validation set (export.metrics.clinical_metrics); HD95 in mm
    clinical_metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class ExportReport:
    model: str
    task: str
    source_digest: str
    benchmark_threads: int
    max_metric_drop: float
    steps: list[StepRecord] = field(default_factory=list)
    variants: list[VariantRecord] = field(default_factory=list)
    torch_eager_throughput_per_s_batch8: float | None = None
    environment: dict[str, str] = field(default_factory=dict)
    gates: dict[str, float] = field(default_factory=dict)  # secondary gates: metric → max worsening vs FP32
    metric_settings: str = ""  # operating threshold / surface tolerance / spacing the clinical metrics used
    metric_definitions: list[str] = field(default_factory=list)  # export.metrics.DEFINITIONS of the task
    input_quality: dict[str, Any] | None = None  # the card's input quality gate (export.quality.derive_gate); None: disabled
    warnings: list[str] = field(default_factory=list)  # what the export accepted but the reader should know (e.g. few calibration cases)

    def variant(self, precision: str, runtime: str = "onnxruntime") -> VariantRecord | None:
        return next((v for v in self.variants if v.precision == precision and v.runtime == runtime), None)

    def figures(self) -> dict[str, float | None]:
        """Ratios for the closing note: INT8/FP32 onnxruntime throughput at batch 8, the INT8
        metric drop, and onnxruntime FP32 / PyTorch eager throughput at batch 8."""
        fp32, int8 = self.variant("fp32"), self.variant("int8")

        def ratio(a: float | None, b: float | None) -> float | None:
            return round(a / b, 3) if a and b else None

        return {
            "int8_over_fp32_throughput_batch8": ratio(int8 and int8.throughput_per_s_batch8, fp32 and fp32.throughput_per_s_batch8),
            "int8_metric_drop": int8.metric_drop if int8 else None,
            "onnxruntime_fp32_over_torch_eager_batch8": ratio(fp32 and fp32.throughput_per_s_batch8, self.torch_eager_throughput_per_s_batch8),
        }

    def to_json(self) -> str:
        return json.dumps(asdict(self) | {"figures": self.figures()}, indent=2, default=str) + "\n"

    def to_markdown(self) -> str:
        lines = [f"# Export report: {self.model}", "", f"Task: {self.task}", ""]
        default = next((v for v in self.variants if v.is_default), None)
        if default is not None:
            lines += [f"Default variant: **{default.model_name}** ({default.precision}, {default.runtime}).", ""]
        lines += ["## Variants", ""]
        lines += [
            "| precision | runtime | Triton model | status | size (MB) | max abs diff vs PyTorch | metric | drop vs FP32 | p50 ms (b=1) | p99 ms (b=1) | cases/s (b=8) |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for v in self.variants:
            diff = max((d["max_abs"] for d in v.max_difference), default=None)
            cells = [
                v.precision,
                v.runtime,
                v.model_name + (" (default)" if v.is_default else ""),
                v.status.value + (f": {v.reason}" if v.reason else ""),
                _number(v.size_bytes / 1e6 if v.size_bytes is not None else None, ".2f"),
                _number(diff, ".2e"),
                f"{v.metric_name} {v.metric:.4f}" if v.metric is not None else "n/a",
                _number(v.metric_drop, "+.4f"),
                _number(v.latency_ms_p50_batch1, ".2f"),
                _number(v.latency_ms_p99_batch1, ".2f"),
                _number(v.throughput_per_s_batch8, ".1f"),
            ]
            lines.append("| " + " | ".join(cells) + " |")
        figures = self.figures()
        lines += [
            "",
            f"Accuracy budget: a variant may lose at most {self.max_metric_drop} of the metric against FP32. "
            f"Timings: onnxruntime CPU, {self.benchmark_threads} thread(s), on this machine.",
        ]
        lines += self._verification_markdown()
        if self.warnings:
            lines += ["", "## Warnings", ""] + [f"- {warning}" for warning in self.warnings]
        lines += self._clinical_markdown()
        lines += self._quality_markdown()
        lines += [
            "## Figures",
            "",
            f"- INT8 / FP32 onnxruntime throughput at batch 8: {_number(figures['int8_over_fp32_throughput_batch8'], '.2f')}x",
            f"- INT8 metric drop: {_number(figures['int8_metric_drop'], '+.4f')}",
            f"- PyTorch eager throughput at batch 8: {_number(self.torch_eager_throughput_per_s_batch8, '.1f')} cases/s; "
            f"onnxruntime FP32 / PyTorch eager: {_number(figures['onnxruntime_fp32_over_torch_eager_batch8'], '.2f')}x",
            "",
            "## Steps",
            "",
            "| step | status | seconds | detail |",
            "|---|---|---|---|",
        ]
        lines += [f"| {s.name} | {s.status.value} | {s.seconds:.1f} | {s.detail} |" for s in self.steps]
        lines += ["", "## Environment", ""] + [f"- {k}: {v}" for k, v in self.environment.items()]
        lines += ["", f"Source digest (spec + precisions + weights + export format): `{self.source_digest}`"]
        return "\n".join(lines) + "\n"

    def _verification_markdown(self) -> list[str]:
        """Per variant and output, which check against PyTorch decided (:mod:`export.verify`):
        labels for segmentation, max abs for other float outputs, the task metric for INT8."""
        rows = [
            f"| {v.precision} {v.runtime} | {d['name']} | {d.get('decided_by') or 'max abs ' + format(d['max_abs'], '.2e')} |"
            for v in self.variants
            for d in v.max_difference
        ]
        if not rows:
            return []
        return ["", "## Verification against PyTorch", "", "| variant | output | check |", "|---|---|---|", *rows]

    def _clinical_markdown(self) -> list[str]:
        """The clinical metrics, one row per metric and one column per variant that has
        them, then the secondary gates, the settings and the definitions."""
        measured = [v for v in self.variants if v.clinical_metrics]
        if not measured:
            return [""]
        names = list(dict.fromkeys(name for v in measured for name in v.clinical_metrics))
        lines = ["", "## Clinical metrics", ""]
        lines.append("| metric | " + " | ".join(f"{v.precision} {v.runtime}" for v in measured) + " | gate (max worsening vs FP32) |")
        lines.append("|---" * (len(measured) + 2) + "|")
        for name in names:
            cells = [_number(v.clinical_metrics.get(name), ".4f") for v in measured]
            gate = str(self.gates[name]) if name in self.gates else ""
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {gate} |")
        lines.append("")
        if self.metric_settings:
            lines += [self.metric_settings, ""]
        lines += [f"- {definition}" for definition in self.metric_definitions]
        return lines + [""]

    def _quality_markdown(self) -> list[str]:
        """The input quality gate: its action and every accepted range."""
        lines = ["## Input quality gate", ""]
        gate = self.input_quality
        if gate is None:
            return lines + ["Disabled (`quality_gate.enabled: false`): the gateway checks no input against what export saw.", ""]
        lines += [
            f"Action `{gate['action']}` (reject: 422 `input_out_of_range`; warn: 200 with `warnings`), margin {gate['margin']}; "
            "ranges from the validation and calibration cases' modality values (before clip/window/normalization) and geometry; "
            "a blank input (std 0 or no foreground) is always outside.",
            "",
            "| input | cases | feature | low | high |",
            "|---|---|---|---|---|",
        ]
        for name, ranges in gate["inputs"].items():
            lines += [f"| {name} | {gate['cases'][name]} | {feature} | {low:g} | {high:g} |" for feature, (low, high) in ranges.items()]
        return lines + [""]

    def write(self, directory: Path) -> None:
        (directory / "export_report.json").write_text(self.to_json())
        (directory / "export_report.md").write_text(self.to_markdown())


def _number(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def environment() -> dict[str, str]:
    import onnx
    import onnxruntime
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "machine": platform.machine(),
        "processor": _cpu_model(),
        "cpu_count": str(os.cpu_count()),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def report_digest(directory: Path) -> str:
    """sha256 of the ``export_report.json`` written in ``directory``; stored in the model
    config so that a served model can be traced to the exact report that verified it."""
    return hashlib.sha256((directory / "export_report.json").read_bytes()).hexdigest()
