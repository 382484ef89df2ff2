"""``medserve export``: spec → verified ONNX FP32 → INT8 QDQ → TensorRT → Triton model
directories + report.

Steps run top to bottom, each recorded with a status (OK / SKIPPED / FAIL) and its reason:

    load model → prepare validation (and calibration) DICOM → PyTorch reference outputs
    → torch2onnx → verify FP32 → FP32 metric → benchmark → onnx2int8 → verify + gate INT8
    → benchmark INT8 → TensorRT FP16 / INT8 (or SKIPPED) → drift reference → report, configs
    → publish

FP32 is the reference and the default variant (``<name>``); it must match PyTorch within
tolerance or the export fails. Lower precisions are gated on the task metric: a variant that
loses more than the accuracy budget is not written, and the report says why. Variants are
assembled in a hidden folder beside the repository and renamed into place at the end,
so a polling Triton never sees a half-written model; a variant that is no longer produced is
removed, so Triton never serves one the current report does not vouch for.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from . import onnx2trt
from .benchmark import measure_onnxruntime, measure_torch_eager
from .data import PreparedSet, load_calibration_set, load_validation_set
from .drift_reference import drift_reference
from .errors import ExportError, ExportFailed, ExportSpecError
from .metrics import TaskMetric, task_metric
from .onnx2int8 import quantize_int8
from .report import ExportReport, StepRecord, StepStatus, VariantRecord, VariantStatus, environment, report_digest
from .spec import ExportSpec, Precision, PythonSource
from .torch2onnx import export_onnx, load_torch_model, torch_outputs
from .triton.model_dir import ONNX_FILE, VariantDirectory, write_configs
from .triton.parameters import gateway_parameters
from .verify import compare_outputs, onnx_outputs

__all__ = ["ExportOptions", "ExportResult", "export_model", "source_digest", "variant_name"]

#: Bumped whenever what export writes changes, so that stale demo repositories re-export.
FORMAT_VERSION = "3"


@dataclass(frozen=True)
class ExportOptions:
    """``precisions`` replaces the spec's list (the CLI's ``--precision``); timings use
    ``benchmark_threads`` onnxruntime/PyTorch threads; ``progress`` shows tqdm bars."""

    precisions: list[Precision] | None = None
    benchmark_threads: int = 1
    progress: bool = False


@dataclass(frozen=True)
class ExportResult:
    model_dirs: list[Path]
    report: ExportReport

    @property
    def model_dir(self) -> Path:
        """The default (FP32) variant's directory."""
        return self.model_dirs[0]


def variant_name(spec: ExportSpec, precision: str) -> str:
    """Triton model name of a variant: the spec's name for FP32, ``<name>_int8`` for INT8."""
    return spec.name if precision in (Precision.FP32, Precision.FP16) else f"{spec.name}_{precision}"


def source_digest(spec: ExportSpec, precisions: list[Precision] | None = None) -> str:
    """sha256 over the spec, the precisions asked for (default: the spec's), the weights or
    archive it names and :data:`FORMAT_VERSION`: equal digests mean an existing export is
    still what this spec would produce."""
    weights = spec.source.state_dict if isinstance(spec.source, PythonSource) else spec.source.archive
    digest = hashlib.sha256(FORMAT_VERSION.encode())
    digest.update(spec.model_dump_json().encode())
    digest.update(",".join(precisions or spec.precisions).encode())
    digest.update(Path(weights).read_bytes() if Path(weights).is_file() else b"missing")
    return digest.hexdigest()


class _Steps:
    def __init__(self, report: ExportReport, log: Callable[[str], None]) -> None:
        self.report, self.log = report, log

    @contextmanager
    def run(self, name: str) -> Iterator[StepRecord]:
        record = StepRecord(name=name, status=StepStatus.OK)
        started = time.perf_counter()
        try:
            yield record
        except Exception as exc:
            record.status, record.detail = StepStatus.FAIL, f"{type(exc).__name__}: {exc}"
            raise
        finally:
            record.seconds = time.perf_counter() - started
            self.report.steps.append(record)
            self.log(f"[{self.report.model}] {name}: {record.status.value} ({record.seconds:.1f}s) {record.detail}")

    def skip(self, name: str, reason: str) -> None:
        self.report.steps.append(StepRecord(name=name, status=StepStatus.SKIPPED, detail=reason))
        self.log(f"[{self.report.model}] {name}: SKIPPED {reason}")


@dataclass
class _Context:
    """What the steps share: the spec, the model, prepared data and PyTorch's answers."""

    spec: ExportSpec
    options: ExportOptions
    staging: Path
    model: object = None
    validation: PreparedSet | None = None
    calibration: PreparedSet | None = None
    reference: list[np.ndarray] = field(default_factory=list)
    output_shapes: list[list[int]] = field(default_factory=list)
    fp32_metric: TaskMetric | None = None
    written: list[VariantDirectory] = field(default_factory=list)

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.spec.outputs]

    def variant(self, precision: str) -> VariantDirectory:
        name = variant_name(self.spec, precision)
        return VariantDirectory(name=name, directory=self.staging / name, precision=precision)


def _metric_detail(metric: TaskMetric, fp32: TaskMetric | None = None) -> str:
    drop = f", drop {fp32.value - metric.value:+.4f}" if fp32 is not None else ""
    return f"{metric.name} {metric.value:.4f}{drop}"


def export_model(
    spec: ExportSpec, repository: Path, log: Callable[[str], None] = print, options: ExportOptions = ExportOptions()
) -> ExportResult:
    """Export ``spec``'s model into ``repository`` (replacing an older export of it)."""
    precisions = options.precisions or spec.precisions
    repository = Path(repository)
    repository.mkdir(parents=True, exist_ok=True)
    report = ExportReport(
        model=spec.name,
        task=spec.task.value,
        source_digest=source_digest(spec, precisions),
        benchmark_threads=options.benchmark_threads,
        max_metric_drop=spec.accuracy_budget.max_metric_drop,
        environment=environment(),
    )
    if Precision.INT8 in precisions and spec.calibration is None:
        raise ExportSpecError(f"{spec.name}: int8 needs calibration DICOM and the spec has no calibration section")
    steps = _Steps(report, log)
    # Staged beside the repository, not in it: a polling Triton would try to load any folder in it.
    staging = Path(tempfile.mkdtemp(prefix=f".{repository.name}-{spec.name}-", dir=repository.parent))
    context = _Context(spec=spec, options=options, staging=staging)
    try:
        _prepare(context, steps)
        base = _fp32(context, steps, report)
        int8 = _int8(context, steps, report) if Precision.INT8 in precisions else None
        _tensorrt(context, steps, report, base, int8, precisions)
        return ExportResult(model_dirs=_publish(context, steps, report, repository), report=report)
    except ExportError:
        raise
    except Exception as exc:
        failed = report.steps[-1].name if report.steps else "start"
        raise ExportFailed(f"export of {spec.name!r} failed in step {failed}: {type(exc).__name__}: {exc}") from exc
    finally:
        shutil.rmtree(context.staging, ignore_errors=True)


def _prepare(context: _Context, steps: _Steps) -> None:
    spec, progress = context.spec, context.options.progress
    with steps.run("load_torch_model") as record:
        context.model = load_torch_model(spec)
        record.detail = spec.source.kind
    with steps.run("prepare_validation_data") as record:
        context.validation = load_validation_set(spec, progress)
        record.detail = f"{len(context.validation)} cases from {spec.validation.dicom_dir}"
    if spec.calibration is not None:
        with steps.run("prepare_calibration_data") as record:
            context.calibration = load_calibration_set(spec, progress)
            record.detail = f"{len(context.calibration)} cases from {spec.calibration.dicom_dir}"
    with steps.run("pytorch_reference") as record:
        context.reference = torch_outputs(context.model, context.validation.feeds())
        context.output_shapes = _output_shapes(spec, context.reference)
        record.detail = "PyTorch outputs on the validation cases: " + ", ".join(
            f"{o.name} {shape}" for o, shape in zip(spec.outputs, context.output_shapes)
        )


def _output_shapes(spec: ExportSpec, reference: list[np.ndarray]) -> list[list[int]]:
    """Output shapes with the batch axis as -1; a shape the spec declares must match."""
    shapes = []
    for output, values in zip(spec.outputs, reference):
        shape = [-1, *values.shape[1:]]
        if output.shape is not None and output.shape != shape:
            raise ExportFailed(f"output {output.name!r} has shape {shape}, the spec declares {output.shape}")
        shapes.append(shape)
    return shapes


def _measure(variant: VariantDirectory, context: _Context, record: VariantRecord, step: StepRecord) -> None:
    assert context.validation is not None
    timing = measure_onnxruntime(variant.onnx_path, context.validation.feeds(0, 8), threads=context.options.benchmark_threads)
    record.latency_ms_p50_batch1 = timing.latency_ms_p50_batch1
    record.latency_ms_p99_batch1 = timing.latency_ms_p99_batch1
    record.throughput_per_s_batch8 = timing.throughput_per_s_batch8
    step.detail = f"p50 {timing.latency_ms_p50_batch1:.2f} ms at batch 1, {timing.throughput_per_s_batch8:.1f} cases/s at batch 8"


def _fp32(context: _Context, steps: _Steps, report: ExportReport) -> VariantDirectory:
    spec, validation = context.spec, context.validation
    assert validation is not None
    variant = context.variant(Precision.FP32)
    with steps.run("torch2onnx") as step:
        export_onnx(context.model, spec, variant.onnx_path)
        step.detail = f"opset {spec.opset}, dynamic batch axis, onnx.checker clean"
    with steps.run("verify_fp32") as step:
        actual = onnx_outputs(variant.onnx_path, validation.feeds(), context.output_names)
        differences = compare_outputs(
            spec.outputs, context.reference, actual, artifact="ONNX FP32",
            tolerance_abs=spec.tolerance.fp32_abs, label_mismatch=spec.tolerance.label_mismatch,
        )
        step.detail = "; ".join(f"{d.name}: max abs {d.max_abs:.2e}, max rel {d.max_rel:.2e}" for d in differences)
    with steps.run("metric_fp32") as step:
        context.fp32_metric = task_metric(spec.metric_output, actual[0], validation.labels, validation.masks)
        step.detail = _metric_detail(context.fp32_metric)
    record = VariantRecord(
        precision="fp32", runtime="onnxruntime", model_name=variant.name, status=VariantStatus.WRITTEN,
        file=f"{variant.name}/1/{ONNX_FILE}", size_bytes=variant.onnx_path.stat().st_size,
        max_difference=[d.to_dict() for d in differences], metric_name=context.fp32_metric.name,
        metric=context.fp32_metric.value, metric_drop=0.0, is_default=True,
    )
    report.variants.append(record)
    with steps.run("benchmark_fp32") as step:
        _measure(variant, context, record, step)
        report.torch_eager_throughput_per_s_batch8 = measure_torch_eager(
            context.model, validation.feeds(0, 8), threads=context.options.benchmark_threads
        )
        step.detail += f"; PyTorch eager {report.torch_eager_throughput_per_s_batch8:.1f} cases/s at batch 8"
    context.written.append(variant)
    return variant


def _int8(context: _Context, steps: _Steps, report: ExportReport) -> VariantDirectory | None:
    spec, validation, calibration = context.spec, context.validation, context.calibration
    assert validation is not None and calibration is not None and context.fp32_metric is not None
    base, variant = context.written[0], context.variant(Precision.INT8)
    with steps.run("onnx2int8") as step:
        quantize_int8(
            base.onnx_path, variant.onnx_path, calibration, spec.quantization, context.options.progress, label=f"{spec.name}: INT8 calibration"
        )
        q = spec.quantization
        step.detail = (
            f"QDQ, {len(calibration)} calibration cases, {q.calibration_method}, "
            f"{'per-channel' if q.per_channel else 'per-tensor'} {q.weight_type} weights, {q.activation_type} activations"
        )
    with steps.run("verify_int8") as step:
        actual = onnx_outputs(variant.onnx_path, validation.feeds(), context.output_names)
        differences = compare_outputs(
            spec.outputs, context.reference, actual, artifact="ONNX INT8", tolerance_abs=None, label_mismatch=None
        )
        metric = task_metric(spec.metric_output, actual[0], validation.labels, validation.masks)
        drop = context.fp32_metric.value - metric.value
        step.detail = _metric_detail(metric, context.fp32_metric) + f" (budget {spec.accuracy_budget.max_metric_drop})"
    record = VariantRecord(
        precision="int8", runtime="onnxruntime", model_name=variant.name, status=VariantStatus.WRITTEN,
        file=f"{variant.name}/1/{ONNX_FILE}", size_bytes=variant.onnx_path.stat().st_size,
        max_difference=[d.to_dict() for d in differences], metric_name=metric.name, metric=metric.value, metric_drop=drop,
    )
    report.variants.append(record)
    if drop > spec.accuracy_budget.max_metric_drop:
        record.status = VariantStatus.REJECTED
        record.reason = f"{metric.name} dropped by {drop:.4f} against FP32, more than the budget {spec.accuracy_budget.max_metric_drop}"
        record.file = None
        steps.skip("benchmark_int8", f"INT8 variant rejected: {record.reason}")
        shutil.rmtree(variant.directory)
        return None
    with steps.run("benchmark_int8") as step:
        _measure(variant, context, record, step)
    context.written.append(variant)
    return variant


def _tensorrt(
    context: _Context, steps: _Steps, report: ExportReport, base: VariantDirectory, int8: VariantDirectory | None, precisions: list[Precision]
) -> None:
    wanted = [(p, v) for p, v in ((Precision.FP16, base), (Precision.INT8, int8)) if p in precisions and v is not None]
    reason = onnx2trt.unavailable_reason()
    for precision, variant in wanted:
        step_name = f"tensorrt_{precision.value}"
        if reason is not None:
            steps.skip(step_name, reason)
            report.variants.append(
                VariantRecord(precision=precision.value, runtime="tensorrt", model_name=variant.name, status=VariantStatus.SKIPPED, reason=reason)
            )
            continue
        _build_tensorrt(context, steps, report, variant, precision, step_name)


def _build_tensorrt(
    context: _Context, steps: _Steps, report: ExportReport, variant: VariantDirectory, precision: Precision, step_name: str
) -> None:
    spec, validation = context.spec, context.validation
    assert validation is not None and context.fp32_metric is not None
    with steps.run(step_name) as step:
        engine = onnx2trt.build_engine(variant.onnx_path, variant.version_dir, spec, precision.value)
        plan = variant.version_dir / engine.file
        actual = onnx2trt.engine_outputs(plan, validation.feeds(), context.output_names)
        fp16 = precision == Precision.FP16
        differences = compare_outputs(
            spec.outputs, context.reference, actual, artifact=f"TensorRT {precision.value}",
            tolerance_abs=spec.tolerance.fp16_abs if fp16 else None,
            label_mismatch=spec.tolerance.label_mismatch if fp16 else None,
        )
        metric = task_metric(spec.metric_output, actual[0], validation.labels, validation.masks)
        drop = context.fp32_metric.value - metric.value
        record = VariantRecord(
            precision=precision.value, runtime="tensorrt", model_name=variant.name, status=VariantStatus.WRITTEN,
            file=f"{variant.name}/1/{engine.file}", size_bytes=plan.stat().st_size,
            max_difference=[d.to_dict() for d in differences], metric_name=metric.name, metric=metric.value, metric_drop=drop,
        )
        report.variants.append(record)
        step.detail = f"{engine.file} for compute capability {engine.compute_capability}; " + _metric_detail(metric, context.fp32_metric)
        if drop > spec.accuracy_budget.max_metric_drop:
            record.status, record.file = VariantStatus.REJECTED, None
            record.reason = f"{metric.name} dropped by {drop:.4f} against FP32, more than the budget {spec.accuracy_budget.max_metric_drop}"
            plan.unlink()
            step.detail += f"; rejected: {record.reason}"
            return
    variant.engines.append(engine)


def _drift_reference(context: _Context, steps: _Steps) -> dict:
    """Reference statistics from the calibration cases, or the validation cases without them."""
    source, cases = ("calibration", context.calibration) if context.calibration is not None else ("validation", context.validation)
    assert cases is not None
    with steps.run("drift_reference") as step:
        predictions = onnx_outputs(context.written[0].onnx_path, cases.feeds(), context.output_names)
        step.detail = f"from {len(cases)} {source} cases and the FP32 model's predictions"
        return drift_reference(context.spec, cases, predictions, source)


def _publish(context: _Context, steps: _Steps, report: ExportReport, repository: Path) -> list[Path]:
    """Write report and configs into every written variant, then move them into place."""
    spec = context.spec
    reference = _drift_reference(context, steps)
    for variant in context.written:
        report.write(variant.directory)
        parameters = gateway_parameters(
            spec, precision=variant.precision, output_shapes=context.output_shapes, onnx_file=ONNX_FILE,
            report_digest=report_digest(variant.directory), drift_reference=reference,
        )
        write_configs(variant, spec, context.output_shapes, parameters)
        variant.directory.chmod(0o755)
    targets = [_replace(v.directory, repository / v.name, context.staging / f"{v.name}.retired") for v in context.written]
    stale = repository / variant_name(spec, Precision.INT8)
    if stale.name not in {v.name for v in context.written} and stale.exists():
        shutil.rmtree(stale)
        steps.log(f"[{spec.name}] removed {stale.name}: this export did not produce it")
    return targets


def _replace(staged: Path, target: Path, retired: Path) -> Path:
    """Move ``staged`` to ``target``; an older ``target`` is first moved to ``retired``
    (outside the repository, deleted with the staging folder), so the model is missing for
    no longer than two renames."""
    if target.exists():
        target.rename(retired)
    staged.rename(target)
    return target

