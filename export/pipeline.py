"""``medserve export``: spec → verified ONNX FP32 → INT8 QDQ → TensorRT → Triton model
directories + report.

Steps run top to bottom, each recorded with a status (OK / SKIPPED / FAIL) and its reason:

    load model → prepare validation (and calibration) DICOM → PyTorch reference outputs
    → for each variant of :data:`export.variants.VARIANTS` asked for (ONNX FP32, ONNX INT8,
      TensorRT FP16, TensorRT INT8): convert → verify, metric, gate → benchmark (or SKIPPED)
    → drift reference → report, configs → publish

FP32 is the reference and the default variant (``<name>``); it must match PyTorch within
tolerance or the export fails. Every variant passes the same judgement (:class:`_Evaluation`):
its outputs against PyTorch's within its tolerance, where it has one, then its task metric
against the reference's: a variant that loses more than the accuracy budget, or worsens a
clinical metric (:mod:`export.metrics`) by more than its gate in ``accuracy_budget.gates``,
is not written, and the report says why. Variants are
assembled in a hidden folder beside the repository and renamed into place at the end,
so a polling Triton never sees a half-written model; a variant that is no longer produced is
removed, so Triton never serves one the current report does not vouch for.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from itertools import groupby
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from postprocessing.cascade import check_stage_specs

from .benchmark import BATCH, measure_onnxruntime, measure_torch_eager
from .cascade import CascadeStages, Runner, cascade_agreement, check_agreement, onnx_runner, torch_runner
from .data import PreparedSet, calibration_shortfall, load_calibration_set, load_validation_set
from .drift_reference import drift_reference
from .errors import ExportError, ExportFailed, ExportSpecError
from .metrics import DEFINITIONS, TaskMetric, clinical_metrics, gate_failures, task_metric
from .quality import derive_gate
from .report import ExportReport, StepRecord, StepStatus, VariantRecord, VariantStatus, environment, report_digest
from .spec import ExportSpec, Precision, PythonSource
from .torch2onnx import load_torch_model, torch_outputs
from .triton.model_dir import ONNX_FILE, VariantDirectory, write_configs
from .triton.parameters import gateway_parameters
from .variants import VARIANTS, Artifact, Conversion, ExportVariant, Runtime, model_names
from .verify import OutputDifference, compare_outputs, onnx_outputs

__all__ = ["ExportOptions", "ExportResult", "export_model", "source_digest"]

#: Bumped whenever what export writes changes, so that stale demo repositories re-export.
FORMAT_VERSION = "4"  # 4: the export report in the card


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

    def run_phases(self, phases: Sequence[tuple[str, Callable[[], str]]]) -> None:
        """Run ``phases`` in order, consecutive ones that name the same step in one step;
        its detail joins what the phases return."""
        for name, group in groupby(phases, key=lambda phase: phase[0]):
            with self.run(name) as record:
                record.detail = "; ".join(detail for detail in (phase() for _, phase in group) if detail)

    def warn(self, message: str) -> None:
        """A warning kept in the report and logged; the export goes on."""
        self.report.warnings.append(message)
        self.log(f"[{self.report.model}] warning: {message}")

    def skip(self, name: str, reason: str) -> None:
        self.report.steps.append(StepRecord(name=name, status=StepStatus.SKIPPED, detail=reason))
        self.log(f"[{self.report.model}] {name}: SKIPPED {reason}")


@dataclass(frozen=True)
class _CascadeContext:
    """A cascade's last stage: both stages' specs, the localiser in PyTorch (to prepare this
    stage's cases as the gateway will) and the localiser's exported FP32 ONNX model."""

    stages: CascadeStages
    localiser_torch: Runner
    localiser_onnx: Path

    def prepare(self, series: Path):
        return self.stages.prepare(series, self.localiser_torch)


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
    reference_metric: TaskMetric | None = None  # the FP32 reference's, which the others are gated on
    reference_clinical: dict[str, float] = field(default_factory=dict)  # the FP32 reference's clinical metrics
    directories: dict[str, VariantDirectory] = field(default_factory=dict)  # by Triton model name
    accepted: dict[str, Artifact] = field(default_factory=dict)  # by variant key, in the order written
    cascade: _CascadeContext | None = None  # when the model is a cascade's last stage

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.spec.outputs]

    @property
    def prepared_validation(self) -> PreparedSet:
        assert self.validation is not None, "prepared in _prepare"
        return self.validation

    @property
    def written(self) -> list[VariantDirectory]:
        """The model directories holding an accepted variant, the default model first."""
        names = {v.model_name(self.spec.name) for v in VARIANTS if v.key in self.accepted}
        return [directory for name, directory in self.directories.items() if name in names]


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
        gates=dict(spec.accuracy_budget.gates),
        metric_definitions=DEFINITIONS["segmentation" if spec.is_segmentation else "classification"],
        metric_settings=_metric_settings(spec),
    )
    uncalibrated = next((v for v in VARIANTS if v.needs_calibration and v.precision in precisions), None)
    if uncalibrated is not None and spec.calibration is None:
        raise ExportSpecError(f"{spec.name}: {uncalibrated.precision.value} needs calibration DICOM and the spec has no calibration section")
    _check_tensorrt_settings(spec, precisions)
    steps = _Steps(report, log)
    # Staged beside the repository, not in it: a polling Triton would try to load any folder in it.
    staging = Path(tempfile.mkdtemp(prefix=f".{repository.name}-{spec.name}-", dir=repository.parent))
    context = _Context(spec=spec, options=options, staging=staging)
    try:
        if spec.cascade is not None:
            context.cascade = _export_localiser(spec, repository, log, options, steps)
        _prepare(context, steps)
        _export_variants(context, steps, report, precisions)
        if context.cascade is not None:
            _verify_cascade(context, steps)
        return ExportResult(model_dirs=_publish(context, steps, report, repository), report=report)
    except ExportError:
        raise
    except Exception as exc:
        failed = report.steps[-1].name if report.steps else "start"
        raise ExportFailed(f"export of {spec.name!r} failed in step {failed}: {type(exc).__name__}: {exc}") from exc
    finally:
        shutil.rmtree(context.staging, ignore_errors=True)


def _export_localiser(
    spec: ExportSpec, repository: Path, log: Callable[[str], None], options: ExportOptions, steps: _Steps
) -> _CascadeContext:
    """Export the cascade's localiser by its own spec (first: this stage's cases need it)."""
    assert spec.cascade is not None
    with steps.run("export_localiser") as record:
        localiser = spec.cascade.localiser_spec()
        problems = check_stage_specs(localiser.preprocessing_spec, spec.preprocessing_spec)
        if problems:
            raise ExportSpecError(f"{spec.name}: cascade: " + "; ".join(problems))
        result = export_model(localiser, repository, log, replace(options, precisions=[Precision.FP32]))
        record.detail = f"{localiser.name} exported to {result.model_dir}"
    return _CascadeContext(
        CascadeStages(localiser, spec), torch_runner(load_torch_model(localiser)), VariantDirectory(localiser.name, result.model_dir, Precision.FP32.value).onnx_path
    )


def _verify_cascade(context: _Context, steps: _Steps) -> None:
    """The whole cascade, exported FP32 models against PyTorch's, on every validation series."""
    assert context.cascade is not None
    spec, cascade = context.spec, context.cascade
    with steps.run("verify_cascade") as record:
        stage_onnx = context.accepted["onnx_fp32"].path
        names = (spec.inputs[0].name, spec.outputs[0].name)
        localiser = cascade.stages.localiser
        exported = (onnx_runner(cascade.localiser_onnx, localiser.inputs[0].name, localiser.outputs[0].name), onnx_runner(stage_onnx, *names))
        series = [spec.validation.dicom_dir / case for case in context.prepared_validation.cases]
        agreement = cascade_agreement(cascade.stages, series, (cascade.localiser_torch, torch_runner(context.model)), exported)
        record.detail = "whole cascade, ONNX vs PyTorch on the source grid: " + check_agreement(
            agreement, spec.tolerance.label_mismatch, spec.tolerance.min_class_dice
        )


def _check_tensorrt_settings(spec: ExportSpec, precisions: list[Precision]) -> None:
    """The spec's TensorRT settings, checked only when an engine will be built (a TensorRT
    variant asked for on a host that can build it): a CPU-only export never fails on them."""
    building = any(v.runtime == Runtime.TENSORRT and v.precision in precisions and v.unavailable() is None for v in VARIANTS)
    problems = spec.tensorrt_problems() if building else []
    if problems:
        raise ExportSpecError(f"{spec.name}: " + "; ".join(problems))


def _metric_settings(spec: ExportSpec) -> str:
    """One sentence for the report: how the clinical metrics were taken."""
    budget = spec.accuracy_budget
    if spec.is_segmentation:
        return (f"Surface Dice tolerance {budget.surface_dice_tolerance_mm} mm; distances in mm from each validation case's "
                "prepared voxel spacing; per class over the foreground classes, the unsuffixed figure their mean.")
    positive = budget.positive_class or (spec.metric_output.labels[-1] if spec.metric_output.labels else "the last class")
    return f"Operating threshold {budget.operating_threshold} on the probability of {positive!r}."


def _prepare(context: _Context, steps: _Steps) -> None:
    spec, progress = context.spec, context.options.progress
    with steps.run("load_torch_model") as record:
        context.model = load_torch_model(spec)
        record.detail = spec.source.kind
    with steps.run("prepare_validation_data") as record:
        context.validation = load_validation_set(spec, progress, context.cascade.prepare if context.cascade else None)
        record.detail = f"{len(context.validation)} cases from {spec.validation.dicom_dir}"
    if spec.calibration is not None:
        with steps.run("prepare_calibration_data") as record:
            context.calibration = load_calibration_set(spec, progress, context.cascade.prepare if context.cascade else None)
            record.detail = f"{len(context.calibration)} cases from {spec.calibration.dicom_dir}"
        shortfall = calibration_shortfall(spec, context.calibration)
        if shortfall is not None:
            steps.warn(shortfall)
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


def _export_variants(context: _Context, steps: _Steps, report: ExportReport, precisions: list[Precision]) -> None:
    """Every variant of the table asked for, in table order, once its source was written."""
    for variant in VARIANTS:
        if variant.precision not in precisions or (variant.built_from is not None and variant.built_from not in context.accepted):
            continue
        reason = variant.unavailable()
        if reason is not None:
            steps.skip(variant.steps.convert, reason)
            report.variants.append(
                VariantRecord(
                    precision=variant.precision.value, runtime=variant.runtime.value, model_name=variant.model_name(context.spec.name),
                    status=VariantStatus.SKIPPED, reason=reason,
                )
            )
            continue
        _export_variant(variant, context, steps, report)


def _export_variant(variant: ExportVariant, context: _Context, steps: _Steps, report: ExportReport) -> None:
    """Convert, then :class:`_Evaluation` (verify, metric, gate), then benchmark one variant;
    each phase recorded in the step the variant's table row names for it."""
    spec = context.spec
    name = variant.model_name(spec.name)
    directory = context.directories.setdefault(name, VariantDirectory(name=name, directory=context.staging / name, precision=variant.precision.value))
    source = context.accepted[variant.built_from].path if variant.built_from is not None else None
    job = Conversion(spec, context.model, source, directory, context.calibration, context.options.progress)
    evaluation = _Evaluation(variant, context, name)

    def convert() -> str:
        evaluation.artifact = variant.convert(job)
        return evaluation.artifact.detail

    steps.run_phases([(variant.steps.convert, convert), (variant.steps.verify, evaluation.verify), (variant.steps.metric, evaluation.judge)])
    record = evaluation.record
    assert record is not None and evaluation.artifact is not None
    report.variants.append(record)
    if record.status == VariantStatus.REJECTED:
        evaluation.artifact.path.unlink()
        if variant.steps.benchmark is not None:
            steps.skip(variant.steps.benchmark, f"{variant.precision.value.upper()} variant rejected: {record.reason}")
        return
    context.accepted[variant.key] = evaluation.artifact
    if evaluation.artifact.engine is not None:
        directory.engines.append(evaluation.artifact.engine)
    if variant.steps.benchmark is not None:
        with steps.run(variant.steps.benchmark) as step:
            _measure(evaluation.artifact.path, context, record, step)
            if variant.is_reference:
                report.torch_eager_throughput_per_s_batch8 = measure_torch_eager(
                    context.model, context.prepared_validation.feeds(0, 8), threads=context.options.benchmark_threads,
                    batch=_benchmark_batch(context.spec),
                )
                step.detail += f"; PyTorch eager {report.torch_eager_throughput_per_s_batch8:.1f} cases/s at batch {_benchmark_batch(context.spec)}"


class _Evaluation:
    """The one judgement every variant passes: its outputs on the validation cases against
    PyTorch's (within the variant's tolerance, where it has one), its task metric, and the
    accuracy budget against the reference's metric. ``verify`` and ``judge`` return the
    report detail of their phase; a variant over budget is recorded REJECTED with the reason."""

    def __init__(self, variant: ExportVariant, context: _Context, name: str) -> None:
        self.variant, self.context, self.name = variant, context, name
        self.artifact: Artifact | None = None
        self.actual: list[np.ndarray] = []
        self.differences: list[OutputDifference] = []
        self.record: VariantRecord | None = None

    def verify(self) -> str:
        context, spec = self.context, self.context.spec
        assert self.artifact is not None
        self.actual = self.variant.outputs(self.artifact.path, context.prepared_validation.feeds(), context.output_names)
        tolerance = self.variant.tolerance(spec.tolerance)
        self.differences = compare_outputs(
            spec.outputs, context.reference, self.actual, artifact=self.variant.label,
            tolerance_abs=tolerance.abs if tolerance else None, label_mismatch=tolerance.label_mismatch if tolerance else None,
            min_class_dice=tolerance.min_class_dice if tolerance else None,
        )
        if tolerance is None:
            return ""  # recorded in the variant's max_difference, gated on the metric alone
        return "; ".join(f"{d.name}: {d.decided_by}" for d in self.differences)

    def judge(self) -> str:
        context, spec, variant = self.context, self.context.spec, self.variant
        assert self.artifact is not None
        validation = context.prepared_validation
        metric = task_metric(spec.metric_output, self.actual[0], validation.labels, validation.masks)
        clinical = self._clinical()
        if variant.is_reference:
            context.reference_metric, context.reference_clinical = metric, clinical
            try:  # a gate naming a metric this model does not report is a spec error, found on FP32
                gate_failures(clinical, clinical, spec.accuracy_budget.gates)
            except ValueError as exc:
                raise ExportSpecError(f"{spec.name}: {exc}") from exc
        assert context.reference_metric is not None
        drop = context.reference_metric.value - metric.value
        budget = spec.accuracy_budget.max_metric_drop
        self.record = VariantRecord(
            precision=variant.precision.value, runtime=variant.runtime.value, model_name=self.name, status=VariantStatus.WRITTEN,
            file=f"{self.name}/1/{self.artifact.path.name}", size_bytes=self.artifact.path.stat().st_size,
            max_difference=[d.to_dict() for d in self.differences], metric_name=metric.name, metric=metric.value, metric_drop=drop,
            is_default=variant.is_reference, clinical_metrics=clinical,
        )
        if variant.is_reference:
            return f"{metric.name} {metric.value:.4f}"
        detail = f"{metric.name} {metric.value:.4f}, drop {drop:+.4f} (budget {budget})"
        reasons = [f"{metric.name} dropped by {drop:.4f} against FP32, more than the budget {budget}"] if drop > budget else []
        reasons += gate_failures(context.reference_clinical, clinical, spec.accuracy_budget.gates)
        if reasons:
            self.record.status, self.record.file = VariantStatus.REJECTED, None
            self.record.reason = "; ".join(reasons)
            detail += f"; rejected: {self.record.reason}"
        return detail

    def _clinical(self) -> dict[str, float]:
        """The clinical metrics of this variant's metric output (:mod:`export.metrics`), with
        each validation case's prepared spacing (mm) for the distances."""
        spec, validation, budget = self.context.spec, self.context.prepared_validation, self.context.spec.accuracy_budget
        sources = validation.sources.get(spec.inputs[0].name, [])
        spacings = [s.prepared_spacing_mm for s in sources] if len(sources) == len(validation) else None
        try:
            return clinical_metrics(
                spec.metric_output, self.actual[0], validation.labels, validation.masks, spacings,
                threshold=budget.operating_threshold, positive_class=budget.positive_class, tolerance_mm=budget.surface_dice_tolerance_mm,
            )
        except ValueError as exc:
            if "positive_class" in str(exc):
                raise ExportSpecError(f"{spec.name}: {exc}") from exc
            raise


def _measure(onnx_path: Path, context: _Context, record: VariantRecord, step: StepRecord) -> None:
    batch = _benchmark_batch(context.spec)
    timing = measure_onnxruntime(onnx_path, context.prepared_validation.feeds(0, 8), threads=context.options.benchmark_threads, batch=batch)
    record.latency_ms_p50_batch1 = timing.latency_ms_p50_batch1
    record.latency_ms_p99_batch1 = timing.latency_ms_p99_batch1
    record.throughput_per_s_batch8 = timing.throughput_per_s_batch8
    step.detail = f"p50 {timing.latency_ms_p50_batch1:.2f} ms at batch 1, {timing.throughput_per_s_batch8:.1f} cases/s at batch {batch}"


def _benchmark_batch(spec: ExportSpec) -> int:
    """The throughput batch: 8, or the model's max batch size when smaller."""
    return min(BATCH, spec.batching.max_batch_size)


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
    report.input_quality = derive_gate(spec.quality_gate, [s.sources for s in (context.validation, context.calibration) if s is not None])
    for variant in context.written:
        report.write(variant.directory)
        parameters = gateway_parameters(
            spec, precision=variant.precision, output_shapes=context.output_shapes, onnx_file=ONNX_FILE,
            report_digest=report_digest(variant.directory), drift_reference=reference, input_quality=report.input_quality,
            export_report=json.loads((variant.directory / "export_report.json").read_text()),  # the document as written
        )
        write_configs(variant, spec, context.output_shapes, parameters)
        variant.directory.chmod(0o755)
    targets = [_replace(v.directory, repository / v.name, context.staging / f"{v.name}.retired") for v in context.written]
    for name in model_names(spec.name):
        if name not in {v.name for v in context.written} and (repository / name).exists():
            shutil.rmtree(repository / name)
            steps.log(f"[{spec.name}] removed {name}: this export did not produce it")
    return targets


def _replace(staged: Path, target: Path, retired: Path) -> Path:
    """Move ``staged`` to ``target``; an older ``target`` is first moved to ``retired``
    (outside the repository, deleted with the staging folder), so the model is missing for
    no longer than two renames."""
    if target.exists():
        target.rename(retired)
    staged.rename(target)
    return target

