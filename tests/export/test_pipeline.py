"""``export_model`` end to end on a small network: variants, report, gates, atomic publish."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from export.errors import ExportFailed
from export.onnx2trt import unavailable_reason
from export.pipeline import ExportOptions, export_model, source_digest
from export.report import VariantStatus
from export.spec import Precision, load_spec
from export.triton.parameters import CONTRACT_VERSION

ZOO_WEIGHTS = Path(__file__).resolve().parents[2] / "devtools" / "zoo" / "weights" / "ct_nodule_classifier.pt"


def _config(model_dir: Path, name: str = "config.pbtxt") -> model_config_pb2.ModelConfig:
    return text_format.Parse((model_dir / name).read_text(), model_config_pb2.ModelConfig())


def _parameters(config: model_config_pb2.ModelConfig) -> dict:
    return {k: v.string_value for k, v in config.parameters.items()}


def test_export_writes_a_verified_model_directory_per_variant(tiny_classifier_spec, tmp_path: Path) -> None:
    repository = tmp_path / "repository"
    spec = load_spec(tiny_classifier_spec())
    result = export_model(spec, repository, log=lambda _: None)

    assert [p.name for p in result.model_dirs] == ["tiny_classifier", "tiny_classifier_int8"]
    assert sorted(p.name for p in repository.iterdir()) == ["tiny_classifier", "tiny_classifier_int8"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repository", "spec.yaml"]  # no staging left behind
    for model_dir, precision in zip(result.model_dirs, ("fp32", "int8")):
        files = sorted(str(p.relative_to(model_dir)) for p in model_dir.rglob("*") if p.is_file())
        assert files == ["1/model.onnx", "1/model.py", "config.pbtxt", "configs/onnxruntime.pbtxt", "export_report.json", "export_report.md"]
        parameters = _parameters(_config(model_dir))
        assert parameters["medserve_contract"] == CONTRACT_VERSION
        assert (parameters["precision"], parameters["variant_of"]) == (precision, "tiny_classifier")
        assert parameters["export_report_digest"] == hashlib.sha256((model_dir / "export_report.json").read_bytes()).hexdigest()
        assert json.loads(parameters["inputs"])[0]["preprocessing"] == json.loads(parameters["preprocessing"])
        assert json.loads(parameters["outputs"])[0]["shape"] == [-1, 2]
        assert json.loads(parameters["drift_reference"])["cases"] == 64
        assert json.loads(parameters["export_report"]) == json.loads((model_dir / "export_report.json").read_text())  # the same document
        assert _config(model_dir, "configs/onnxruntime.pbtxt").parameters["precision"].string_value == precision
    int8_ops = {n.op_type for n in onnx.load(str(result.model_dirs[1] / "1" / "model.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= int8_ops

    report = json.loads((result.model_dir / "export_report.json").read_text())
    assert report["source_digest"] == source_digest(spec)
    fp32, int8 = report["variants"][:2]
    assert (fp32["is_default"], fp32["status"], int8["status"]) == (True, "written", "written")
    assert fp32["max_difference"][0]["max_abs"] <= 1e-4
    assert fp32["metric_name"] == int8["metric_name"] == "auc"
    assert int8["metric_drop"] == pytest.approx(fp32["metric"] - int8["metric"])
    assert all(v["latency_ms_p50_batch1"] > 0 and v["throughput_per_s_batch8"] > 0 for v in (fp32, int8))
    assert report["torch_eager_throughput_per_s_batch8"] > 0
    assert [(s["name"], s["status"]) for s in report["steps"]] == [
        (name, "SKIPPED" if name.startswith("tensorrt") else "OK")
        for name in (
            "load_torch_model", "prepare_validation_data", "prepare_calibration_data", "pytorch_reference", "torch2onnx",
            "verify_fp32", "metric_fp32", "benchmark_fp32", "onnx2int8", "verify_int8", "benchmark_int8",
            "tensorrt_fp16", "tensorrt_int8", "drift_reference",
        )
    ]


def test_a_variant_no_longer_produced_is_removed(tiny_classifier_spec, tmp_path: Path) -> None:
    repository = tmp_path / "repository"
    spec = load_spec(tiny_classifier_spec())
    export_model(spec, repository, log=lambda _: None)
    export_model(spec, repository, log=lambda _: None, options=ExportOptions(precisions=[Precision.FP32]))
    assert [p.name for p in repository.iterdir()] == ["tiny_classifier"]


@pytest.fixture(scope="module")
def blank_calibration(tmp_path_factory) -> Path:
    """64 slices of air: calibrated on them, INT8 activation ranges miss every real image."""
    from devtools.dicomgen import ct_dataset

    folder = tmp_path_factory.mktemp("blank")
    for i in range(64):
        ct_dataset(np.full((64, 64), -1000.0, np.float32), pixel_spacing_mm=(5.0, 5.0)).save_as(folder / f"air_{i:02d}.dcm", enforce_file_format=True)
    return folder


def test_int8_missing_its_budget_is_not_written_and_the_report_says_why(tiny_classifier_spec, blank_calibration: Path, tmp_path: Path) -> None:
    spec = load_spec(
        tiny_classifier_spec(
            source={"kind": "python", "factory": "devtools.zoo.ct_nodule_classifier:build_model", "state_dict": str(ZOO_WEIGHTS)},
            calibration={"dicom_dir": str(blank_calibration)},
        )
    )
    repository = tmp_path / "repository"
    result = export_model(spec, repository, log=lambda _: None)

    assert [p.name for p in repository.iterdir()] == ["tiny_classifier"]
    int8 = result.report.variant("int8")
    assert int8 is not None and int8.status == VariantStatus.REJECTED and int8.file is None
    assert int8.reason.startswith("auc dropped by ") and "more than the budget 0.01" in int8.reason
    assert int8.metric_drop is not None and int8.metric_drop > 0.01
    markdown = (repository / "tiny_classifier" / "export_report.md").read_text()
    assert "| int8 | onnxruntime | tiny_classifier_int8 | rejected: auc dropped by" in markdown
    assert "| benchmark_int8 | SKIPPED |" in markdown
    assert [v.status for v in result.report.variants if v.runtime == "tensorrt"] == [VariantStatus.SKIPPED]  # no INT8 engine either


def test_fp32_beyond_tolerance_fails_and_leaves_the_repository_alone(tiny_classifier_spec, tmp_path: Path) -> None:
    repository = tmp_path / "repository"
    good = export_model(load_spec(tiny_classifier_spec()), repository, log=lambda _: None)
    before = (good.model_dir / "export_report.json").read_bytes()

    strict = load_spec(tiny_classifier_spec(tolerance={"fp32_abs": 1e-12}))
    with pytest.raises(ExportFailed, match=r"ONNX FP32 output 'probabilities' differs from PyTorch by up to .* \(tolerance 1e-12"):
        export_model(strict, repository, log=lambda _: None)

    assert (good.model_dir / "export_report.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repository", "spec.yaml"]


def test_steps_are_logged_with_status_and_seconds(tiny_classifier_spec, tmp_path: Path) -> None:
    lines: list[str] = []
    export_model(load_spec(tiny_classifier_spec()), tmp_path / "repository", log=lines.append, options=ExportOptions(precisions=[Precision.FP32]))
    assert lines[0].startswith("[tiny_classifier] load_torch_model: OK (")
    assert any(line.startswith("[tiny_classifier] verify_fp32: OK") and "max abs" in line for line in lines)


def test_int8_asked_for_without_calibration_data_is_a_spec_error(tiny_classifier_spec, tmp_path: Path) -> None:
    from export.errors import ExportSpecError

    spec = load_spec(tiny_classifier_spec(calibration=None, precisions=["fp32"]))
    with pytest.raises(ExportSpecError, match=r"tiny_classifier: int8 needs calibration DICOM and the spec has no calibration section"):
        export_model(spec, tmp_path / "repository", log=lambda _: None, options=ExportOptions(precisions=[Precision.FP32, Precision.INT8]))


def test_without_calibration_the_drift_reference_comes_from_validation(tiny_classifier_spec, tmp_path: Path) -> None:
    spec = load_spec(tiny_classifier_spec(calibration=None, precisions=["fp32"]))
    result = export_model(spec, tmp_path / "repository", log=lambda _: None)
    parameters = _parameters(_config(result.model_dir))
    assert (json.loads(parameters["drift_reference"])["source"], json.loads(parameters["drift_reference"])["cases"]) == ("validation", 16)


def test_fewer_calibration_cases_are_calibrated_on_with_a_warning_in_log_and_report(tiny_classifier_spec, classifier_data: Path, tmp_path: Path) -> None:
    lines: list[str] = []
    spec = load_spec(tiny_classifier_spec(calibration={"dicom_dir": str(classifier_data / "validation")}, precisions=["fp32", "int8"]))
    result = export_model(spec, tmp_path / "repository", log=lines.append)

    (warning,) = result.report.warnings
    assert warning.startswith("calibration: 64 cases asked for, 16 found; calibrated on 16.")
    assert f"[tiny_classifier] warning: {warning}" in lines
    assert result.report.variant("int8") is not None
    assert f"## Warnings\n\n- {warning}" in (result.model_dir / "export_report.md").read_text()
    assert json.loads((result.model_dir / "export_report.json").read_text())["warnings"] == [warning]


def test_a_segmentation_export_is_verified_on_labels_and_the_report_says_so(tmp_path: Path, write_spec) -> None:
    import yaml

    from devtools.zoo.datasets import write_segmenter_set

    zoo = Path(__file__).resolve().parents[2] / "devtools" / "zoo"
    write_segmenter_set(tmp_path / "validation", 3, seed=9)
    data = yaml.safe_load((zoo / "specs" / "ct_nodule_segmenter.yaml").read_text())
    data["source"]["state_dict"] = str(zoo / "weights" / "ct_nodule_segmenter.pt")
    data["validation"] = {"dicom_dir": str(tmp_path / "validation"), "manifest": str(tmp_path / "validation" / "manifest.csv")}
    data["precisions"] = ["fp32"]
    data.pop("calibration")
    result = export_model(load_spec(write_spec(data)), tmp_path / "repository", log=lambda _: None)

    (difference,) = result.report.variant("fp32").max_difference
    assert difference["label_disagreement"] <= 1e-3 and difference["decided_by"].startswith("label disagreement ")
    assert "(decided); max abs" in difference["decided_by"]
    text = (result.model_dir / "export_report.md").read_text()
    assert f"| fp32 onnxruntime | labels | {difference['decided_by']} |" in text


@pytest.mark.skipif(unavailable_reason() is not None, reason="needs a host that builds TensorRT engines")
def test_tensorrt_settings_fail_an_export_that_builds_an_engine(tiny_classifier_spec, tmp_path: Path) -> None:
    from export.errors import ExportSpecError

    spec = load_spec(tiny_classifier_spec(tensorrt={"opt_batch_size": 64}, precisions=["fp32", "fp16"]))
    with pytest.raises(ExportSpecError, match=r"tiny_classifier: tensorrt.opt_batch_size must not exceed batching.max_batch_size"):
        export_model(spec, tmp_path / "repository", log=lambda _: None)
