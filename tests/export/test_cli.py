"""``medserve export``: options, what it prints, and exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from medserve.cli import main


def test_export_with_chosen_precisions(tiny_classifier_spec, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tiny_classifier_spec()
    code = main(["export", str(spec), "--output", str(tmp_path / "repository"), "--precision", "fp32", "--no-progress"])

    out = capsys.readouterr().out
    assert code == 0
    assert " fp32 onnxruntime written  tiny_classifier/1/model.onnx" in out
    assert f"report: {tmp_path / 'repository' / 'tiny_classifier' / 'export_report.md'}" in out
    assert [p.name for p in (tmp_path / "repository").iterdir()] == ["tiny_classifier"]


def test_export_prints_skipped_tensorrt_engines(tiny_classifier_spec, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["export", str(tiny_classifier_spec()), "--output", str(tmp_path / "r"), "--precision", "fp32,fp16", "--no-progress"])
    assert code == 0
    assert " fp16 tensorrt    skipped  tensorrt is not installed" in capsys.readouterr().out


def test_unknown_precision_exits_2(tiny_classifier_spec, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(tiny_classifier_spec()), "--precision", "fp32,bf16"]) == 2
    assert "export failed: --precision: 'bf16' is not a valid Precision" in capsys.readouterr().err


def test_missing_spec_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(tmp_path / "missing.yaml"), "--output", str(tmp_path / "r")]) == 2
    assert f"export failed: spec file not found: {tmp_path / 'missing.yaml'}" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_precision_on_the_command_line_replaces_the_spec_list_before_validation(
    tiny_classifier_spec, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tiny_classifier_spec(calibration=None)  # lists int8 (the default precisions) without calibration data
    code = main(["export", str(spec), "--output", str(tmp_path / "r"), "--precision", "fp32", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    assert " fp32 onnxruntime written  tiny_classifier/1/model.onnx" in capsys.readouterr().out


def test_tensorrt_settings_do_not_fail_an_export_that_builds_no_engine(
    tiny_classifier_spec, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from export.onnx2trt import unavailable_reason

    if unavailable_reason() is None:
        pytest.skip("this host builds TensorRT engines, so the settings are checked")
    spec = tiny_classifier_spec(tensorrt={"opt_batch_size": 64}, precisions=["fp32", "fp16"])  # opt 64 > max_batch_size 8
    assert main(["export", str(spec), "--output", str(tmp_path / "r"), "--no-progress"]) == 0
    assert f" fp16 tensorrt    skipped  {unavailable_reason()}" in capsys.readouterr().out
