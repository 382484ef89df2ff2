"""TensorRT: without ``tensorrt`` and a GPU the step is SKIPPED, and the report says why."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from export import onnx2trt
from export.pipeline import ExportOptions, export_model
from export.report import StepStatus, VariantStatus
from export.spec import Precision, load_spec


def test_reason_when_tensorrt_is_not_installed() -> None:
    assert "tensorrt" not in sys.modules
    assert onnx2trt.unavailable_reason() == (
        "tensorrt is not installed (pip install tensorrt (TensorRT 10+) on a host with an NVIDIA GPU)"
    )


def test_reason_when_tensorrt_is_installed_but_no_gpu_is_visible(monkeypatch: pytest.MonkeyPatch) -> None:
    """An importable ``tensorrt`` on this GPU-less machine: the GPU check decides."""
    monkeypatch.setitem(sys.modules, "tensorrt", types.ModuleType("tensorrt"))
    assert onnx2trt.unavailable_reason() == "tensorrt is installed but no CUDA GPU is visible (torch.cuda.is_available() is False)"


def test_export_reports_tensorrt_skipped_and_writes_no_tensorrt_config(tiny_classifier_spec, tmp_path: Path) -> None:
    result = export_model(load_spec(tiny_classifier_spec()), tmp_path / "repository", log=lambda _: None)
    report = result.report

    skipped = {s.name: s for s in report.steps if s.status == StepStatus.SKIPPED}
    assert set(skipped) == {"tensorrt_fp16", "tensorrt_int8"}
    assert all("tensorrt is not installed" in s.detail for s in skipped.values())
    engines = [v for v in report.variants if v.runtime == "tensorrt"]
    assert [(v.precision, v.model_name, v.status) for v in engines] == [
        ("fp16", "tiny_classifier", VariantStatus.SKIPPED),
        ("int8", "tiny_classifier_int8", VariantStatus.SKIPPED),
    ]
    for model_dir in result.model_dirs:
        assert not (model_dir / "configs" / "tensorrt.pbtxt").exists()
        assert not list((model_dir / "1").glob("*.plan"))
        written = json.loads((model_dir / "export_report.json").read_text())
        assert [s["status"] for s in written["steps"] if s["name"].startswith("tensorrt")] == ["SKIPPED", "SKIPPED"]
        assert "| tensorrt_fp16 | SKIPPED |" in (model_dir / "export_report.md").read_text()


def test_no_tensorrt_step_when_its_precisions_are_not_asked_for(tiny_classifier_spec, tmp_path: Path) -> None:
    options = ExportOptions(precisions=[Precision.FP32])
    result = export_model(load_spec(tiny_classifier_spec()), tmp_path / "repository", log=lambda _: None, options=options)
    assert not [s for s in result.report.steps if s.name.startswith("tensorrt")]
    assert [v.precision for v in result.report.variants] == ["fp32"]
