"""The export spec (YAML): everything needed to put one trained model into production.

Validated with pydantic so that a typo fails at load time with the offending field named,
not halfway through an export. Relative paths resolve against the spec file's folder.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from preprocessing import InvalidSpec, PreprocessingSpec


class ExportSpecError(ValueError):
    """The spec file is missing, unreadable or invalid; the message names the field."""


class Task(StrEnum):
    CLASSIFICATION = "classification"
    SEGMENTATION_2D = "segmentation-2d"
    SEGMENTATION_3D = "segmentation-3d"
    MULTI_INPUT = "multi-input"


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


class TensorSpec(_Strict):
    """One model input: name, shape with -1 for the dynamic batch axis first, dtype."""

    name: str
    shape: list[int]
    dtype: Literal["float32", "float16"] = "float32"

    @field_validator("shape")
    @classmethod
    def _dynamic_batch(cls, shape: list[int]) -> list[int]:
        if len(shape) < 2 or shape[0] != -1 or any(d < 1 for d in shape[1:]):
            raise ValueError("shape must be [-1, d1, d2, ...] with a dynamic batch axis first and fixed dims > 0")
        return shape


class OutputSpec(_Strict):
    """One model output and what it means to the gateway's postprocessing."""

    name: str
    meaning: Literal["class_probabilities", "class_logits", "segmentation_probabilities", "segmentation_labels", "activation_map"]
    labels: list[str] = Field(default_factory=list)
    shape: list[int] | None = None
    dtype: Literal["float32", "float16", "uint8", "int64"] = "float32"


class BatchingSpec(_Strict):
    """Triton dynamic batching: largest batch and how long a request may wait for company."""

    max_batch_size: int = Field(32, ge=1, le=1024)
    max_queue_delay_us: int = Field(2000, ge=0, le=1_000_000)
    preferred_batch_sizes: list[int] = Field(default_factory=list)


class DataSpec(_Strict):
    """A folder of DICOM files; ``labels`` is a CSV (``file,label``) for validation data."""

    dicom_dir: Path
    labels: Path | None = None


class ExportSpec(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_\-]{0,63}$")
    task: Task
    description: str = ""
    source: PythonSource | TorchScriptSource = Field(discriminator="kind")
    inputs: list[TensorSpec] = Field(min_length=1)
    outputs: list[OutputSpec] = Field(min_length=1)
    preprocessing: dict[str, Any]
    validation: DataSpec
    tolerance_abs: float = Field(1e-4, gt=0, description="max |ONNX - PyTorch| allowed per output element")
    batching: BatchingSpec = BatchingSpec()
    instance_count: int = Field(1, ge=1, le=64)
    opset: int = Field(17, ge=17)

    @field_validator("preprocessing")
    @classmethod
    def _valid_preprocessing(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            PreprocessingSpec.from_dict(value)
        except InvalidSpec as exc:
            raise ValueError(f"preprocessing: {exc.message}") from exc
        return value

    @model_validator(mode="after")
    def _labels_match(self) -> "ExportSpec":
        for output in self.outputs:
            if output.meaning == "class_probabilities" and not output.labels:
                raise ValueError(f"output {output.name!r}: class_probabilities needs labels")
        return self

    @property
    def preprocessing_spec(self) -> PreprocessingSpec:
        return PreprocessingSpec.from_dict(self.preprocessing)


def _resolve_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    def resolve(value: Any) -> Any:
        return str((base / value).resolve()) if value is not None else None

    source = data.get("source")
    if isinstance(source, dict):
        for key in ("state_dict", "archive"):
            if key in source:
                source[key] = resolve(source[key])
    validation = data.get("validation")
    if isinstance(validation, dict):
        for key in ("dicom_dir", "labels"):
            if key in validation:
                validation[key] = resolve(validation[key])
    return data


def load_spec(path: Path | str, overrides: dict[str, Any] | None = None) -> ExportSpec:
    """Read and validate a spec file. ``overrides`` replace top-level keys (e.g. the
    validation folder, which a caller may generate elsewhere)."""
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
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ExportSpecError(f"{path}: invalid export spec: {problems}") from exc
