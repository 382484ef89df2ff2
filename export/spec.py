"""The export spec (YAML): everything needed to put one trained model into production.

Validated with pydantic so that a typo fails at load time with the offending field named,
not halfway through an export. Relative paths resolve against the spec file's folder.

A spec names the model and its task; where the trained model comes from (a Python factory +
``state_dict``, or a TorchScript archive); its input tensors, each with the preprocessing spec
that turns DICOM into it; its outputs and what they mean; calibration DICOM (for INT8) and
labelled validation DICOM; the accuracy budget lower precisions must keep; and how Triton
batches and instantiates it. See ``devtools/zoo/specs/*.yaml`` for complete examples.

The task and the output meanings are the :mod:`contract`'s enums (``Task`` is re-exported
here), so that a spec only validates what the gateway can read.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from contract import CLASSIFICATION_MEANINGS, LABELLED_MEANINGS, SEGMENTATION_MEANINGS, OutputMeaning, Task
from contract.codes import LabelCodes, codes_from_document
from contract.errors import MalformedCard
from postprocessing import PostprocessingSpec
from postprocessing.region import RegionSpec
from preprocessing import InvalidSpec, PreprocessingSpec

from .errors import ExportSpecError

__all__ = [
    "AccuracyBudget",
    "BatchingSpec",
    "CalibrationSpec",
    "ExportSpec",
    "ExportSpecError",
    "InputSpec",
    "OutputSpec",
    "Precision",
    "PythonSource",
    "QuantizationSpec",
    "Task",
    "TensorRTSpec",
    "ToleranceSpec",
    "TorchScriptSource",
    "ValidationSpec",
    "load_spec",
    "parse_precisions",
]


class Precision(StrEnum):
    """``fp32``: the ONNX model (always exported; the reference and default variant).
    ``int8``: a QDQ ONNX model, served by onnxruntime and the source of a TensorRT INT8 engine.
    ``fp16``: a TensorRT FP16 engine built from the FP32 ONNX model (GPU hosts only)."""

    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"


_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"


def _valid_preprocessing(value: dict[str, Any]) -> dict[str, Any]:
    _parse_preprocessing(value)
    return value


#: A ``preprocessing`` block, kept as written and checked as a :class:`PreprocessingSpec`.
PreprocessingDocument = Annotated[dict[str, Any], AfterValidator(_valid_preprocessing)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PythonSource(_Strict):
    """A Python import path (``package.module:callable``), its keyword arguments and a
    ``state_dict`` file saved with ``torch.save(model.state_dict())``."""

    kind: Literal["python"] = "python"
    factory: str
    kwargs: dict[str, Any] = Field(default_factory=dict)
    state_dict: Path

    @field_validator("factory")
    @classmethod
    def _has_colon(cls, value: str) -> str:
        if ":" not in value:
            raise ValueError("factory must look like 'package.module:callable'")
        return value


class TorchScriptSource(_Strict):
    """A TorchScript archive loaded with ``torch.jit.load``; no Python source needed."""

    kind: Literal["torchscript"] = "torchscript"
    archive: Path


class InputSpec(_Strict):
    """One model input: name, shape with -1 for the dynamic batch axis first, dtype, the
    DICOM modality it takes and, for multi-input models, its own preprocessing spec."""

    name: str = Field(pattern=_NAME_PATTERN)
    shape: list[int]
    dtype: Literal["float32", "float16"] = "float32"
    modality: str | None = None
    preprocessing: PreprocessingDocument | None = None

    @field_validator("shape")
    @classmethod
    def _dynamic_batch(cls, shape: list[int]) -> list[int]:
        if len(shape) < 2 or shape[0] != -1 or any(d < 1 for d in shape[1:]):
            raise ValueError("shape must be [-1, d1, d2, ...] with a dynamic batch axis first and fixed dims > 0")
        return shape


class OutputSpec(_Strict):
    """One model output and what it means to the gateway's postprocessing. ``labels`` name
    the classes (for segmentation: every label value, background first)."""

    name: str = Field(pattern=_NAME_PATTERN)
    meaning: OutputMeaning
    labels: list[str] = Field(default_factory=list)
    shape: list[int] | None = None
    dtype: Literal["float32", "float16", "uint8", "int64"] = "float32"
    #: How a segmentation output's class scores become the answer's labels
    #: (:class:`postprocessing.PostprocessingSpec` as JSON); None: argmax, nothing else.
    postprocessing: dict[str, Any] | None = None
    #: What each label is in DICOM codes, for SEG segments and SR findings
    #: (:mod:`contract.codes`: label → {"category", "type", "site"?: [scheme, value, meaning]});
    #: every key one of ``labels``; labels without codes are coded by the gateway's table.
    codes: dict[str, Any] | None = None

    def postprocessing_spec(self) -> PostprocessingSpec | None:
        return PostprocessingSpec.from_dict(self.postprocessing) if self.postprocessing is not None else None

    def label_codes(self) -> dict[str, LabelCodes]:
        return codes_from_document(self.codes, self.labels, f"output {self.name!r}: codes") if self.codes else {}

    @model_validator(mode="after")
    def _codes_fit(self) -> "OutputSpec":
        try:
            self.label_codes()
        except MalformedCard as exc:
            raise ValueError(str(exc)) from exc
        return self

    @model_validator(mode="after")
    def _postprocessing_fits(self) -> "OutputSpec":
        if self.postprocessing is None:
            return self
        if self.meaning not in SEGMENTATION_MEANINGS:
            raise ValueError(f"output {self.name!r}: postprocessing applies to segmentation outputs only, not {self.meaning}")
        try:
            spec = PostprocessingSpec.from_dict(self.postprocessing)
        except InvalidSpec as exc:
            raise ValueError(f"output {self.name!r}: {exc.message}") from exc
        for step in spec.steps:
            for label in ((step.label,) if step.label is not None else ()) + (step.labels or ()):
                if label >= len(self.labels):
                    raise ValueError(
                        f"output {self.name!r}: postprocessing: {step.op} names label {label}, "
                        f"but the output has {len(self.labels)} labels (0..{len(self.labels) - 1})"
                    )
        if self.meaning == OutputMeaning.SEGMENTATION_LABELS and any(s.op == "threshold" for s in spec.steps):
            raise ValueError(f"output {self.name!r}: postprocessing: threshold needs class probabilities, not segmentation_labels")
        return self

    @model_validator(mode="after")
    def _meaning_fits(self) -> "OutputSpec":
        if self.meaning in LABELLED_MEANINGS and len(self.labels) < 2:
            raise ValueError(f"output {self.name!r}: {self.meaning} needs labels for at least 2 classes")
        integer = self.dtype in ("uint8", "int64")
        if self.meaning == OutputMeaning.SEGMENTATION_LABELS and not integer:
            raise ValueError(f"output {self.name!r}: segmentation_labels must have dtype uint8 or int64")
        if self.meaning != OutputMeaning.SEGMENTATION_LABELS and integer:
            raise ValueError(f"output {self.name!r}: only segmentation_labels may have an integer dtype")
        if self.shape is not None and (len(self.shape) < 2 or self.shape[0] != -1):
            raise ValueError(f"output {self.name!r}: shape must start with the dynamic batch axis -1")
        return self


class BatchingSpec(_Strict):
    """Triton dynamic batching: largest batch and how long a request may wait for company."""

    max_batch_size: int = Field(32, ge=1, le=1024)
    max_queue_delay_us: int = Field(2000, ge=0, le=1_000_000)
    preferred_batch_sizes: list[int] = Field(default_factory=list)

    @model_validator(mode="after")
    def _preferred_within_max(self) -> "BatchingSpec":
        if any(not 1 <= b <= self.max_batch_size for b in self.preferred_batch_sizes):
            raise ValueError("preferred_batch_sizes must lie in 1..max_batch_size")
        return self


class CalibrationSpec(_Strict):
    """DICOM for INT8 calibration: a folder and optionally a manifest CSV with one column per
    model input (a file, or a series folder for volumetric inputs). Without a manifest, every
    ``*.dcm`` file (2D input) or every folder holding ``*.dcm`` files (volumetric input) under
    ``dicom_dir`` is one sample. The first ``samples`` (sorted) are used; fewer are accepted
    with a warning (logged and in the report, :data:`export.data.CALIBRATION_ADVICE`), none is
    an error. Every case must prepare to the input's shape exactly: a sliding-window model is
    calibrated and validated on patch-sized volumes.

    How many are enough: min-max calibration takes each activation's extremes, so what matters
    is that the cases span the intensities and anatomy served, not their count; 16-32 varied 3D
    series (or 64+ 2D images) usually settle the ranges. Fewer may do: the INT8 variant is
    still gated on the task metric against FP32, and is rejected, not served, when it drops
    more than ``accuracy_budget.max_metric_drop``."""

    dicom_dir: Path
    manifest: Path | None = None
    samples: int = Field(64, ge=1, le=100_000)


class ValidationSpec(_Strict):
    """Labelled validation DICOM: a manifest CSV with one column per model input, plus
    ``label`` (class index, classification) or ``mask`` (segmentation), paths relative to
    ``dicom_dir``. A mask is a ``.npy`` label map in the output's geometry or, for a volumetric
    input, a NIfTI (``.nii``/``.nii.gz``) or DICOM SEG on the source series' grid, which export
    resamples onto the model's grid by nearest neighbour (:mod:`export.masks`)."""

    dicom_dir: Path
    manifest: Path


class ToleranceSpec(_Strict):
    """How far an artifact may be from PyTorch on the validation inputs, judged by task
    (:mod:`export.verify`): segmentation outputs by their labels (``label_mismatch`` and
    ``min_class_dice``; the float max-abs is recorded only), every other float output by
    ``fp32_abs`` / ``fp16_abs``."""

    fp32_abs: float = Field(1e-4, gt=0, description="max |ONNX - PyTorch| per float output element (non-segmentation outputs)")
    fp16_abs: float = Field(2e-2, gt=0, description="max |TensorRT FP16 - PyTorch| per float output element (non-segmentation outputs)")
    label_mismatch: float = Field(
        1e-3, ge=0, lt=1, description="fraction of segmentation voxels whose label (argmax) may differ from PyTorch's (ties within float error)"
    )
    min_class_dice: float = Field(0.99, gt=0, le=1, description="least Dice of each class's voxels against PyTorch's labels, pooled over the validation cases")


_GATED_METRICS = ("auc", "dice", "hd95_mm", "surface_dice", "sensitivity", "specificity", "ppv", "npv")


class AccuracyBudget(_Strict):
    """A lower-precision variant may lose at most ``max_metric_drop`` (absolute) of the task
    metric (AUC for classification, Dice for segmentation) against FP32 on the validation set.

    ``gates`` adds secondary gates on the clinical metrics (:mod:`export.metrics`): metric name
    → the most it may worsen against FP32, in the metric's unit (a fraction, or mm for
    ``hd95_mm``, where worse is higher). A name is ``dice``, ``hd95_mm``, ``surface_dice``,
    ``sensitivity``, ``specificity``, ``ppv``, ``npv`` or ``auc`` — averaged over foreground
    classes — or ``name[label]`` for one segmentation class. Classification rates are taken
    at ``operating_threshold`` on the probability of ``positive_class`` (default: the last
    label); surface Dice at ``surface_dice_tolerance_mm``."""

    max_metric_drop: float = Field(0.01, gt=0, le=1)
    gates: dict[str, float] = Field(default_factory=dict)
    operating_threshold: float = Field(0.5, gt=0, lt=1)
    positive_class: str | None = None
    surface_dice_tolerance_mm: float = Field(1.0, gt=0, le=100)

    @field_validator("gates")
    @classmethod
    def _known_metrics(cls, value: dict[str, float]) -> dict[str, float]:
        for name, budget in value.items():
            base = name.split("[", 1)[0]
            if base not in _GATED_METRICS or ("[" in name and not name.endswith("]")):
                raise ValueError(f"gates: unknown metric {name!r}; one of {', '.join(_GATED_METRICS)}, optionally with [label]")
            if not budget >= 0 or budget == float("inf"):
                raise ValueError(f"gates.{name}: a budget is a finite number >= 0")
        return value


class QuantizationSpec(_Strict):
    """onnxruntime static QDQ quantization options. The defaults (per-channel signed weights,
    unsigned activations, min-max calibration) are what runs fastest on x86 with VNNI.
    ``Softmax`` stays float by default: quantized, its probabilities would come in steps of
    1/255 and no longer sum to 1, and it costs next to nothing in float. Convolutions with
    fewer than ``float_below_channels`` input *and* output channels (a segmentation head's
    2→2 convolution) stay float too: onnxruntime's INT8 kernels are slower than float there."""

    calibration_method: Literal["minmax", "entropy", "percentile"] = "minmax"
    per_channel: bool = True
    activation_type: Literal["uint8", "int8"] = "uint8"
    weight_type: Literal["int8", "uint8"] = "int8"
    activation_symmetric: bool = False
    weight_symmetric: bool = True
    exclude_op_types: list[str] = Field(default_factory=lambda: ["Softmax"])
    exclude_nodes: list[str] = Field(default_factory=list)
    float_below_channels: int = Field(4, ge=0)


class TensorRTSpec(_Strict):
    """TensorRT engine build settings: builder workspace, and the batch size the
    optimization profile is tuned for (its range is 1..max_batch_size)."""

    workspace_mb: int = Field(4096, ge=64)
    opt_batch_size: int = Field(8, ge=1)


class QualityGateSpec(_Strict):
    """The input quality gate export derives from what the validation and calibration cases
    look like (:mod:`export.quality`) and writes into the card (``input_quality``): per input,
    accepted ranges of the modality values' spread and percentiles, the foreground fraction,
    and the spacing and field of view (mm), each widened by ``margin``. The gateway answers an
    input outside them 422 ``input_out_of_range`` (``action: reject``) or 200 with a
    ``warnings`` entry (``action: warn``); a blank input (no spread or no foreground) is
    always outside."""

    enabled: bool = True
    action: Literal["warn", "reject"] = "warn"
    margin: float = Field(
        1.0, ge=0, le=100,
        description="widening of the ranges seen: spreads, spacings and extents to [min / (1 + margin), max * (1 + margin)], "
        "the foreground fraction to [min / (1 + margin), 1], percentiles and mean by margin x the intensity range seen",
    )


class CascadeExportSpec(_Strict):
    """This model is the last stage of a cascade (:mod:`contract.cascade`): ``localiser`` is
    the export spec file of the first stage (exported first, by the same command), ``region``
    how its labels become this model's crop (:class:`postprocessing.region.RegionSpec`)."""

    localiser: Path
    region: dict[str, Any] = Field(default_factory=dict)

    @field_validator("region")
    @classmethod
    def _valid_region(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            RegionSpec.from_dict(value)
        except InvalidSpec as exc:
            raise ValueError(exc.message) from exc
        return value

    @property
    def region_spec(self) -> RegionSpec:
        return RegionSpec.from_dict(self.region)

    def localiser_spec(self) -> "ExportSpec":
        """The localiser's export spec, read from its file."""
        return load_spec(self.localiser)


class ExportSpec(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_\-]{0,63}$")
    task: Task
    description: str = ""
    source: PythonSource | TorchScriptSource = Field(discriminator="kind")
    inputs: list[InputSpec] = Field(min_length=1)
    outputs: list[OutputSpec] = Field(min_length=1)
    preprocessing: PreprocessingDocument | None = None
    calibration: CalibrationSpec | None = None
    validation: ValidationSpec
    precisions: list[Precision] = Field(default_factory=lambda: [Precision.FP32, Precision.FP16, Precision.INT8])
    tolerance: ToleranceSpec = ToleranceSpec()
    accuracy_budget: AccuracyBudget = AccuracyBudget()
    quantization: QuantizationSpec = QuantizationSpec()
    tensorrt: TensorRTSpec = TensorRTSpec()
    batching: BatchingSpec = BatchingSpec()
    quality_gate: QualityGateSpec = QualityGateSpec()
    instance_count: int = Field(1, ge=1, le=64)
    opset: int = Field(17, ge=17, le=23)
    cascade: CascadeExportSpec | None = None

    @field_validator("precisions")
    @classmethod
    def _fp32_first(cls, value: list[Precision]) -> list[Precision]:
        if Precision.FP32 not in value:
            raise ValueError("fp32 must be among the precisions: it is the reference and the default variant")
        if len(set(value)) != len(value):
            raise ValueError("each precision may be listed once")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "ExportSpec":
        self._check_names()
        self._check_inputs_for_task()
        self._check_outputs_for_task()
        self._check_cascade()
        for tensor in self.inputs:
            _check_input_preprocessing(tensor, self.input_preprocessing(tensor.name), tiled=self.task == Task.SEGMENTATION_3D)
        if Precision.INT8 in self.precisions and self.calibration is None:
            raise ValueError("calibration: int8 is among the precisions, so calibration DICOM are required")
        return self

    def tensorrt_problems(self) -> list[str]:
        """What is wrong with the TensorRT settings; checked by export only when a TensorRT
        engine is to be built, so that a CPU-only export never fails on them."""
        if self.tensorrt.opt_batch_size > self.batching.max_batch_size:
            return ["tensorrt.opt_batch_size must not exceed batching.max_batch_size"]
        return []

    def _check_names(self) -> None:
        names = [t.name for t in self.inputs] + [o.name for o in self.outputs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"inputs/outputs: tensor names must be unique, repeated: {', '.join(duplicates)}")

    def _check_inputs_for_task(self) -> None:
        count = len(self.inputs)
        if self.task == Task.MULTI_INPUT:
            if count < 2:
                raise ValueError("inputs: a multi-input model needs at least 2 inputs")
            missing = [t.name for t in self.inputs if t.preprocessing is None]
            if missing:
                raise ValueError(f"inputs: every input of a multi-input model needs its own preprocessing; missing for {', '.join(missing)}")
        elif count != 1:
            raise ValueError(f"inputs: a {self.task.value} model takes exactly 1 input, the spec lists {count}")
        rank = {Task.CLASSIFICATION: 4, Task.SEGMENTATION_2D: 4, Task.SEGMENTATION_3D: 5}.get(self.task)
        for tensor in self.inputs:
            if rank is not None and len(tensor.shape) != rank:
                axes = "[-1, C, H, W]" if rank == 4 else "[-1, C, D, H, W]"
                raise ValueError(f"inputs.{tensor.name}.shape: a {self.task.value} input is {axes}, got {tensor.shape}")
            if len(tensor.shape) not in (4, 5):
                raise ValueError(f"inputs.{tensor.name}.shape: expected [-1, C, H, W] or [-1, C, D, H, W], got {tensor.shape}")
        if self.preprocessing is None and any(t.preprocessing is None for t in self.inputs):
            raise ValueError("preprocessing: required unless every input carries its own")

    def _check_outputs_for_task(self) -> None:
        first = self.outputs[0].meaning
        if self.task.is_segmentation:
            if not first.is_segmentation:
                raise ValueError(f"outputs: the first output of a {self.task.value} model must be one of {_listed(SEGMENTATION_MEANINGS)}, got {first}")
        elif self.task == Task.CLASSIFICATION and not first.is_classification:
            raise ValueError(f"outputs: the first output of a classification model must be one of {_listed(CLASSIFICATION_MEANINGS)}, got {first}")
        elif not (first.is_classification or first.is_segmentation):
            raise ValueError(f"outputs: the first output must be a class or segmentation output, got {first}")

    def _check_cascade(self) -> None:
        """A cascade's last stage segments a volume from class scores; a model outside a cascade
        cannot take percentiles of a localiser."""
        uses_localiser = any(self.input_preprocessing(t.name).uses_localiser_statistics for t in self.inputs)
        if self.cascade is None:
            if uses_localiser:
                raise ValueError("preprocessing: clip_percentiles of the localiser needs a cascade section")
            return
        if self.task != Task.SEGMENTATION_3D:
            raise ValueError(f"cascade: the last stage of a cascade is a segmentation-3d model, not {self.task.value}")
        if self.metric_output.meaning != OutputMeaning.SEGMENTATION_PROBABILITIES:
            raise ValueError("cascade: the stage's first output must be segmentation_probabilities (class scores to threshold)")

    def input_preprocessing(self, name: str) -> PreprocessingSpec:
        """The preprocessing of input ``name``: its own, else the top-level spec."""
        tensor = next(t for t in self.inputs if t.name == name)
        return _parse_preprocessing(tensor.preprocessing if tensor.preprocessing is not None else self.preprocessing or {})

    @property
    def preprocessing_spec(self) -> PreprocessingSpec:
        """The first input's preprocessing: what the gateway's single-input path applies."""
        return self.input_preprocessing(self.inputs[0].name)

    @property
    def metric_output(self) -> OutputSpec:
        """The output the task metric is computed on (the first one)."""
        return self.outputs[0]

    @property
    def is_segmentation(self) -> bool:
        return self.metric_output.meaning.is_segmentation


def _listed(meanings: tuple[OutputMeaning, ...]) -> str:
    return ", ".join(meanings)


def _parse_preprocessing(value: dict[str, Any]) -> PreprocessingSpec:
    try:
        return PreprocessingSpec.from_dict(value)
    except InvalidSpec as exc:
        raise ValueError(f"preprocessing: {exc.message}") from exc


def _check_input_preprocessing(tensor: InputSpec, prep: PreprocessingSpec, tiled: bool) -> None:
    """The preprocessing must produce exactly the tensor the input declares — except that a
    ``tiled`` (3D segmentation) input may leave ``output_size`` open: the gateway then tiles
    the prepared volume with a sliding window of the input's spatial shape."""
    where = f"inputs.{tensor.name}"
    layout = "CHW" if len(tensor.shape) == 4 else "CDHW"
    if prep.layout != layout:
        raise ValueError(f"{where}: shape {tensor.shape} needs preprocessing layout {layout}, the spec says {prep.layout}")
    spatial = tensor.shape[2:]
    if prep.output_size is not None and list(prep.output_size) != spatial:
        raise ValueError(f"{where}: preprocessing output_size {list(prep.output_size)} differs from the input's spatial shape {spatial}")
    if prep.output_size is None and not tiled:
        raise ValueError(f"{where}: preprocessing must fix output_size to {spatial} so that any DICOM fits the input")
    if prep.dtype != tensor.dtype:
        raise ValueError(f"{where}: preprocessing dtype {prep.dtype} differs from the input dtype {tensor.dtype}")
    if tensor.modality is not None and prep.modalities and tensor.modality.upper() not in prep.modalities:
        raise ValueError(f"{where}: modality {tensor.modality} is not among the preprocessing modalities {list(prep.modalities)}")


def parse_precisions(text: str) -> list[Precision]:
    """``"fp32,int8"`` → precisions; fp32 is added first when missing (it is the reference)."""
    try:
        chosen = [Precision(p.strip().lower()) for p in text.split(",") if p.strip()]
    except ValueError as exc:
        raise ExportSpecError(f"--precision: {exc}; choose from {', '.join(p.value for p in Precision)}") from exc
    return chosen if Precision.FP32 in chosen else [Precision.FP32, *chosen]


def _resolve_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    def resolve(section: Any, keys: tuple[str, ...]) -> None:
        if isinstance(section, dict):
            for key in keys:
                if isinstance(section.get(key), (str, Path)):
                    section[key] = str((base / section[key]).resolve())

    resolve(data.get("source"), ("state_dict", "archive"))
    resolve(data.get("calibration"), ("dicom_dir", "manifest"))
    resolve(data.get("validation"), ("dicom_dir", "manifest"))
    resolve(data.get("cascade"), ("localiser",))
    return data


def _describe(error: dict[str, Any]) -> str:
    where = ".".join(str(p) for p in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def load_spec(path: Path | str, overrides: dict[str, Any] | None = None) -> ExportSpec:
    """Read and validate a spec file. ``overrides`` replace top-level keys before validation
    (e.g. the precisions chosen on the command line, so that ``--precision fp32`` loads a spec
    that lists int8 without calibration data); paths in them resolve like the file's own."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise ExportSpecError(f"spec file not found: {path}") from exc
    except yaml.YAMLError as exc:
        raise ExportSpecError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ExportSpecError(f"{path}: the spec must be a YAML mapping")
    data.update(overrides or {})
    try:
        return ExportSpec.model_validate(_resolve_paths(data, path.parent))
    except ValidationError as exc:
        problems = "; ".join(_describe(err) for err in exc.errors())
        raise ExportSpecError(f"{path}: invalid export spec: {problems}") from exc
