"""The export report: per-precision rows, figures, JSON beside Markdown, and its digest."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from export.report import ExportReport, StepRecord, StepStatus, VariantRecord, VariantStatus, report_digest


def _report() -> ExportReport:
    report = ExportReport(model="m", task="classification", source_digest="abc", benchmark_threads=1, max_metric_drop=0.01)
    report.steps = [
        StepRecord("torch2onnx", StepStatus.OK, "opset 17", 0.4),
        StepRecord("tensorrt_fp16", StepStatus.SKIPPED, "tensorrt is not installed"),
    ]
    report.variants = [
        VariantRecord("fp32", "onnxruntime", "m", VariantStatus.WRITTEN, file="m/1/model.onnx", size_bytes=8_000_000,
                      max_difference=[{"name": "p", "max_abs": 2e-7, "max_rel": 1e-6, "decided_by": "max abs 2.00e-07 <= 1e-04 (decided)"}],
                      metric_name="auc", metric=0.99, metric_drop=0.0, latency_ms_p50_batch1=4.0, latency_ms_p99_batch1=6.0,
                      throughput_per_s_batch8=200.0, is_default=True),
        VariantRecord("int8", "onnxruntime", "m_int8", VariantStatus.WRITTEN, file="m_int8/1/model.onnx", size_bytes=2_000_000,
                      max_difference=[{"name": "p", "max_abs": 0.02, "max_rel": 0.1, "decided_by": "max abs 2.00e-02 recorded (gated on the task metric)"}],
                      metric_name="auc", metric=0.985, metric_drop=0.005, latency_ms_p50_batch1=1.5, latency_ms_p99_batch1=2.0,
                      throughput_per_s_batch8=600.0),
        VariantRecord("fp16", "tensorrt", "m", VariantStatus.SKIPPED, reason="tensorrt is not installed"),
    ]
    report.torch_eager_throughput_per_s_batch8 = 100.0
    return report


def test_figures_are_ratios_at_batch_8() -> None:
    assert _report().figures() == {
        "int8_over_fp32_throughput_batch8": 3.0,
        "int8_metric_drop": 0.005,
        "onnxruntime_fp32_over_torch_eager_batch8": 2.0,
    }


def test_figures_without_int8() -> None:
    report = _report()
    report.variants = report.variants[:1]
    assert report.figures()["int8_over_fp32_throughput_batch8"] is None


def test_markdown_has_a_row_per_variant_and_says_which_is_default() -> None:
    text = _report().to_markdown()
    assert "Default variant: **m** (fp32, onnxruntime)." in text
    assert "| fp32 | onnxruntime | m (default) | written | 8.00 | 2.00e-07 | auc 0.9900 | +0.0000 | 4.00 | 6.00 | 200.0 |" in text
    assert "| int8 | onnxruntime | m_int8 | written | 2.00 | 2.00e-02 | auc 0.9850 | +0.0050 | 1.50 | 2.00 | 600.0 |" in text
    assert "| fp16 | tensorrt | m | skipped: tensorrt is not installed | n/a |" in text
    assert "INT8 / FP32 onnxruntime throughput at batch 8: 3.00x" in text
    assert "onnxruntime FP32 / PyTorch eager: 2.00x" in text
    assert "| tensorrt_fp16 | SKIPPED | 0.0 | tensorrt is not installed |" in text


def test_markdown_says_for_each_variant_and_output_which_check_decided() -> None:
    text = _report().to_markdown()
    assert "## Verification against PyTorch" in text
    assert "| fp32 onnxruntime | p | max abs 2.00e-07 <= 1e-04 (decided) |" in text
    assert "| int8 onnxruntime | p | max abs 2.00e-02 recorded (gated on the task metric) |" in text


def test_written_json_round_trips_and_its_digest_is_its_sha256(tmp_path: Path) -> None:
    _report().write(tmp_path)
    data = json.loads((tmp_path / "export_report.json").read_text())
    assert data["variants"][1]["model_name"] == "m_int8"
    assert data["variants"][2]["status"] == "skipped"
    assert data["figures"]["int8_over_fp32_throughput_batch8"] == pytest.approx(3.0)
    assert (tmp_path / "export_report.md").read_text().startswith("# Export report: m")
    assert report_digest(tmp_path) == hashlib.sha256((tmp_path / "export_report.json").read_bytes()).hexdigest()
