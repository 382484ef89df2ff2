"""``medserve export``: spec → verified ONNX → Triton model directory + report.

Steps run top to bottom, each recorded with a status (OK / SKIPPED / FAIL) and its reason.
The model directory is assembled in a temporary folder beside the repository and renamed
into place at the end, so a polling Triton never sees a half-written model.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from .data import load_prepared_set
from .metrics import roc_auc
from .report import ExportReport, StepRecord, StepStatus, VariantRecord, environment, measure_onnxruntime, report_digest
from .spec import ExportSpec, Task
from .torch2onnx import ExportFailed, export_onnx, load_torch_model, torch_outputs, verify_against_torch
from .triton import config as triton_config

RUNNER_SOURCE = Path(__file__).parent / "triton" / "onnx_runner.py"
CONTRACT_VERSION = "1"


@dataclass(frozen=True)
class ExportResult:
    model_dir: Path
    report: ExportReport


class _Steps:
    def __init__(self, report: ExportReport, log: Callable[[str], None]) -> None:
        self.report, self.log = report, log

    @contextmanager
    def run(self, name: str) -> Iterator[StepRecord]:
        record = StepRecord(name=name, status=StepStatus.OK)
        started = time.perf_counter()
        self.log(f"[{name}] ...")
        try:
            yield record
        except Exception as exc:
            record.status, record.detail = StepStatus.FAIL, f"{type(exc).__name__}: {exc}"
            raise
        finally:
            record.seconds = time.perf_counter() - started
            self.report.steps.append(record)
            self.log(f"[{name}] {record.status} ({record.seconds:.1f}s) {record.detail}")


def _task_metric(spec: ExportSpec, outputs: list[np.ndarray], labels: np.ndarray | None) -> tuple[str, float | None]:
    if spec.task == Task.CLASSIFICATION and labels is not None:
        probabilities = outputs[0]
        return "auc", roc_auc(labels, probabilities[:, -1])
    return "none", None


def gateway_parameters(spec: ExportSpec, digest: str, onnx_file: str) -> dict[str, object]:
    """The JSON documents the gateway reads from the model config's ``parameters``."""
    return {
        "medserve_contract": CONTRACT_VERSION,
        "task": spec.task.value,
        "description": spec.description,
        "inputs": [t.model_dump() for t in spec.inputs],
        "outputs": [o.model_dump() for o in spec.outputs],
        "preprocessing": spec.preprocessing_spec.to_dict(),
        "onnx_model_filename": onnx_file,
        "export_report_digest": digest,
    }


def export_model(spec: ExportSpec, repository: Path, log: Callable[[str], None] = print) -> ExportResult:
    """Export ``spec``'s model into ``repository/<name>/`` (replacing an older export)."""
    repository = Path(repository)
    repository.mkdir(parents=True, exist_ok=True)
    report = ExportReport(model=spec.name, task=spec.task.value, environment=environment())
    steps = _Steps(report, log)
    staging = Path(tempfile.mkdtemp(prefix=f".{spec.name}.", dir=repository))
    try:
        with steps.run("load_torch_model") as record:
            model = load_torch_model(spec)
            record.detail = spec.source.kind
        with steps.run("prepare_validation_data") as record:
            prepared = load_prepared_set(spec.validation.dicom_dir, spec.preprocessing_spec, spec.validation.labels)
            record.detail = f"{len(prepared.files)} DICOM files"
        version_dir = staging / "1"
        onnx_file = "model.onnx"
        with steps.run("torch2onnx") as record:
            export_onnx(model, spec, version_dir / onnx_file)
            record.detail = f"opset {spec.opset}, onnx.checker clean"
        with steps.run("verify_fp32") as record:
            differences = verify_against_torch(model, version_dir / onnx_file, spec, [prepared.inputs])
            record.detail = ", ".join(f"{d.name}: max abs {d.max_abs:.2e}" for d in differences)
        with steps.run("task_metric_fp32") as record:
            metric_name, metric = _task_metric(spec, torch_outputs(model, [prepared.inputs]), prepared.labels)
            record.detail = f"{metric_name} {metric:.4f}" if metric is not None else "no labels"
        with steps.run("benchmark_fp32") as record:
            p50, p99, throughput = measure_onnxruntime(version_dir / onnx_file, {spec.inputs[0].name: prepared.inputs[:1]})
            record.detail = f"p50 {p50:.2f} ms, {throughput:.0f}/s at batch 8"
        report.variants.append(
            VariantRecord(
                precision="fp32",
                file=f"1/{onnx_file}",
                size_bytes=(version_dir / onnx_file).stat().st_size,
                max_difference=[d.to_dict() for d in differences],
                metric_name=metric_name,
                metric=metric,
                latency_ms_p50_batch1=p50,
                latency_ms_p99_batch1=p99,
                throughput_per_s_batch8=throughput,
                is_default=True,
            )
        )
        report.write(staging)
        shutil.copyfile(RUNNER_SOURCE, version_dir / "model.py")
        config = triton_config.ModelConfig(
            name=spec.name,
            backend="python",
            max_batch_size=spec.batching.max_batch_size,
            inputs=[triton_config.TensorConfig(t.name, t.dtype, t.shape[1:]) for t in spec.inputs],
            outputs=[
                triton_config.TensorConfig(o.name, o.dtype, _output_dims(model, spec, prepared.inputs, i))
                for i, o in enumerate(spec.outputs)
            ],
            max_queue_delay_us=spec.batching.max_queue_delay_us,
            preferred_batch_sizes=spec.batching.preferred_batch_sizes,
            instance_count=spec.instance_count,
            parameters=gateway_parameters(spec, report_digest(staging), onnx_file),
        )
        (staging / "config.pbtxt").write_text(triton_config.render(config))
        target = repository / spec.name
        if target.exists():
            shutil.rmtree(target)
        staging.chmod(0o755)
        staging.rename(target)
        return ExportResult(model_dir=target, report=report)
    except ExportFailed:
        raise
    except Exception as exc:
        raise ExportFailed(f"export of {spec.name!r} failed in step {report.steps[-1].name if report.steps else 'start'}: {exc}") from exc
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _output_dims(model, spec: ExportSpec, inputs: np.ndarray, index: int) -> list[int]:
    declared = spec.outputs[index].shape
    if declared:
        return declared[1:]
    return list(torch_outputs(model, [inputs[:1]])[index].shape[1:])


def summary(result: ExportResult) -> str:
    return json.dumps(
        {"model_dir": str(result.model_dir), "steps": [(s.name, s.status.value) for s in result.report.steps]}
    )
