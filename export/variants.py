"""The export variants, as one table (:data:`VARIANTS`): what each is, how its artifact is
produced, how it is judged and which Triton config renderings serve it.

=============  =========  ===========  ==============  =====================  ===================  ===========
variant        precision  runtime      Triton model    built from             gated vs PyTorch     needs
=============  =========  ===========  ==============  =====================  ===================  ===========
onnx_fp32      fp32       onnxruntime  ``<name>``      PyTorch (torch2onnx)   ``fp32_abs``         —
onnx_int8      int8       onnxruntime  ``<name>_int8`` onnx_fp32 (onnx2int8)  recorded only        calibration
tensorrt_fp16  fp16       tensorrt     ``<name>``      onnx_fp32 (onnx2trt)   ``fp16_abs``         GPU
tensorrt_int8  int8       tensorrt     ``<name>_int8`` onnx_int8 (onnx2trt)   recorded only        GPU, calib.
=============  =========  ===========  ==============  =====================  ===================  ===========

``onnx_fp32`` is the reference: its task metric is what every other variant is gated on
(``accuracy_budget.max_metric_drop``), and it is the default model. An ONNX variant is a
Triton model directory of its own (Python-runner and onnxruntime configs); a TensorRT engine
joins the directory of the ONNX model it was built from (``configs/tensorrt.pbtxt``). Asking
for a precision (``--precision``) selects every variant of that precision whose source was
written; :mod:`export.pipeline` runs them in table order.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from . import onnx2trt
from .onnx2int8 import quantize_int8
from .spec import ExportSpec, Precision, ToleranceSpec
from .torch2onnx import export_onnx
from .triton.config import ONNXRUNTIME, PYTHON_RUNNER, TENSORRT, Rendering
from .verify import onnx_outputs

if TYPE_CHECKING:
    from .data import PreparedSet
    from .triton.model_dir import VariantDirectory

__all__ = [
    "VARIANTS",
    "Artifact",
    "Conversion",
    "ExportVariant",
    "Runtime",
    "Tolerance",
    "VariantSteps",
    "model_name",
    "model_names",
    "renderings_for",
]


class Runtime(StrEnum):
    """What executes a variant's artifact (the report's ``runtime`` column)."""

    ONNXRUNTIME = "onnxruntime"
    TENSORRT = "tensorrt"


@dataclass(frozen=True)
class Tolerance:
    """How far a variant's outputs may be from PyTorch's (:mod:`export.verify`): ``abs`` for
    non-segmentation float outputs; for segmentation outputs the fraction ``label_mismatch``
    of voxels whose label differs and the least per-class Dice ``min_class_dice``."""

    abs: float
    label_mismatch: float
    min_class_dice: float


@dataclass(frozen=True)
class Conversion:
    """What a converter gets: the spec, the PyTorch model (for the reference), the ONNX file
    of the variant it is built from, the model directory to write into, calibration data."""

    spec: ExportSpec
    model: object
    source: Path | None
    directory: VariantDirectory
    calibration: PreparedSet | None
    progress: bool


@dataclass(frozen=True)
class Artifact:
    """What a converter wrote: the file (in the directory's version folder), the report's
    detail on it, and the TensorRT engine it is, if it is one."""

    path: Path
    detail: str
    engine: onnx2trt.Engine | None = None


@dataclass(frozen=True)
class VariantSteps:
    """The report steps a variant's work is recorded in. Phases that name the same step run
    in it together: a TensorRT engine is built and judged in one step; the FP32 reference
    reports its verification and its metric apart. ``benchmark`` None: no CPU timings."""

    convert: str
    verify: str
    metric: str
    benchmark: str | None


@dataclass(frozen=True)
class ExportVariant:
    """One row of the table.

    ``model_suffix`` makes the Triton model name (``<name><suffix>``); ``built_from`` is the key
    of the variant whose ONNX file ``convert`` reads (None: the PyTorch model — the reference);
    ``outputs`` runs the artifact on prepared inputs; ``tolerance`` is None where the outputs
    are recorded but only the task metric gates; ``unavailable`` says why the variant cannot
    be built on this host (None: it can)."""

    key: str
    precision: Precision
    runtime: Runtime
    label: str  # names the artifact in verification errors
    model_suffix: str
    built_from: str | None
    convert: Callable[[Conversion], Artifact]
    outputs: Callable[[Path, dict[str, np.ndarray], list[str]], list[np.ndarray]]
    tolerance: Callable[[ToleranceSpec], Tolerance | None]
    renderings: tuple[Rendering, ...]
    steps: VariantSteps
    needs_gpu: bool = False
    needs_calibration: bool = False
    unavailable: Callable[[], str | None] = lambda: None

    @property
    def is_reference(self) -> bool:
        return self.built_from is None

    def model_name(self, base: str) -> str:
        return base + self.model_suffix


def _torch2onnx(job: Conversion) -> Artifact:
    path = export_onnx(job.model, job.spec, job.directory.onnx_path)
    return Artifact(path, f"opset {job.spec.opset}, dynamic batch axis, onnx.checker clean")


def _onnx2int8(job: Conversion) -> Artifact:
    assert job.source is not None and job.calibration is not None
    q = job.spec.quantization
    path = quantize_int8(
        job.source, job.directory.onnx_path, job.calibration, q, job.progress, label=f"{job.spec.name}: INT8 calibration"
    )
    detail = (
        f"QDQ, {len(job.calibration)} calibration cases, {q.calibration_method}, "
        f"{'per-channel' if q.per_channel else 'per-tensor'} {q.weight_type} weights, {q.activation_type} activations"
    )
    return Artifact(path, detail)


def _onnx2trt(precision: Precision) -> Callable[[Conversion], Artifact]:
    def convert(job: Conversion) -> Artifact:
        assert job.source is not None
        engine = onnx2trt.build_engine(job.source, job.directory.version_dir, job.spec, precision.value)
        return Artifact(job.directory.version_dir / engine.file, f"{engine.file} for compute capability {engine.compute_capability}", engine)

    return convert


def _fp32_tolerance(t: ToleranceSpec) -> Tolerance:
    return Tolerance(t.fp32_abs, t.label_mismatch, t.min_class_dice)


def _fp16_tolerance(t: ToleranceSpec) -> Tolerance:
    return Tolerance(t.fp16_abs, t.label_mismatch, t.min_class_dice)


def _metric_only(t: ToleranceSpec) -> None:
    """INT8 outputs move by quantization steps: recorded, gated on the task metric alone."""
    return None


def _tensorrt_steps(precision: Precision) -> VariantSteps:
    step = f"tensorrt_{precision.value}"
    return VariantSteps(convert=step, verify=step, metric=step, benchmark=None)


VARIANTS: tuple[ExportVariant, ...] = (
    ExportVariant(
        key="onnx_fp32", precision=Precision.FP32, runtime=Runtime.ONNXRUNTIME, label="ONNX FP32", model_suffix="",
        built_from=None, convert=_torch2onnx, outputs=onnx_outputs, tolerance=_fp32_tolerance,
        renderings=(PYTHON_RUNNER, ONNXRUNTIME),
        steps=VariantSteps("torch2onnx", "verify_fp32", "metric_fp32", "benchmark_fp32"),
    ),
    ExportVariant(
        key="onnx_int8", precision=Precision.INT8, runtime=Runtime.ONNXRUNTIME, label="ONNX INT8", model_suffix="_int8",
        built_from="onnx_fp32", convert=_onnx2int8, outputs=onnx_outputs, tolerance=_metric_only,
        renderings=(PYTHON_RUNNER, ONNXRUNTIME),
        steps=VariantSteps("onnx2int8", "verify_int8", "verify_int8", "benchmark_int8"), needs_calibration=True,
    ),
    ExportVariant(
        key="tensorrt_fp16", precision=Precision.FP16, runtime=Runtime.TENSORRT, label="TensorRT fp16", model_suffix="",
        built_from="onnx_fp32", convert=_onnx2trt(Precision.FP16), outputs=onnx2trt.engine_outputs, tolerance=_fp16_tolerance,
        renderings=(TENSORRT,), steps=_tensorrt_steps(Precision.FP16),
        needs_gpu=True, unavailable=onnx2trt.unavailable_reason,
    ),
    ExportVariant(
        key="tensorrt_int8", precision=Precision.INT8, runtime=Runtime.TENSORRT, label="TensorRT int8", model_suffix="_int8",
        built_from="onnx_int8", convert=_onnx2trt(Precision.INT8), outputs=onnx2trt.engine_outputs, tolerance=_metric_only,
        renderings=(TENSORRT,), steps=_tensorrt_steps(Precision.INT8),
        needs_gpu=True, needs_calibration=True, unavailable=onnx2trt.unavailable_reason,
    ),
)


def model_name(base: str, precision: str) -> str:
    """Triton model name of ``base``'s variants of ``precision``: ``<base>`` for FP32 and FP16,
    ``<base>_int8`` for INT8."""
    return next(v for v in VARIANTS if v.precision == precision).model_name(base)


def model_names(base: str) -> list[str]:
    """Every Triton model an export of ``base`` may write, the default model first."""
    return list(dict.fromkeys(v.model_name(base) for v in VARIANTS))


def renderings_for(precision: str, engine_precisions: set[str]) -> tuple[Rendering, ...]:
    """The configs of a model directory holding the ONNX variant of ``precision`` and
    TensorRT engines of ``engine_precisions``."""
    held = [v for v in VARIANTS if (v.runtime, v.precision) == (Runtime.ONNXRUNTIME, precision)]
    held += [v for v in VARIANTS if v.runtime == Runtime.TENSORRT and v.precision in engine_precisions]
    return tuple(dict.fromkeys(r for v in held for r in v.renderings))
