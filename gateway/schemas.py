"""Response bodies of the HTTP API (pydantic), named by role."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from contract import OutputMeaning, Task


class ErrorBody(BaseModel):
    """The one shape of every error answer."""

    code: str = Field(description="Stable machine-readable error code, e.g. 'invalid_dicom'.")
    message: str = Field(description="What went wrong and what to do about it.")
    request_id: str = Field("", description="Echoed in the X-Request-ID header; quote it in support requests.")


class ModelSummary(BaseModel):
    """One model of Triton's repository; ``servable`` and ``reason`` appear only when this
    gateway cannot serve a loaded model (e.g. its contract major is unknown here)."""

    name: str
    version: str
    state: str = Field(description="Triton's state of the model, e.g. READY, UNAVAILABLE.")
    servable: bool = Field(True, description="False when the model is loaded but its card cannot be used by this gateway; absent when true.")
    reason: str | None = Field(None, description="Why the model is not servable; absent when it is.")


class ModelList(BaseModel):
    models: list[ModelSummary]


class TensorPublic(BaseModel):
    name: str
    dtype: str
    shape: list[int]
    modality: str | None = Field(None, description="The Modality that feeds this input (multi-input models).")
    preprocessing: dict[str, Any] | None = Field(None, description="This input's own preprocessing spec, when it has one.")


class OutputPublic(BaseModel):
    name: str
    meaning: OutputMeaning
    labels: list[str]


class ModelPublic(BaseModel):
    name: str
    task: Task
    description: str
    ready: bool
    labels: list[str]
    inputs: list[TensorPublic]
    outputs: list[OutputPublic]
    preprocessing: dict[str, Any]
    max_batch_size: int
    export_report_digest: str


class LabelProbability(BaseModel):
    label: str
    probability: float = Field(ge=0.0, le=1.0)


class StageTimings(BaseModel):
    """Milliseconds spent in each stage of this request; a cascade adds each of its stages'
    own (``localiser.infer``, ``model.infer``, ...), already counted in the totals."""

    model_config = ConfigDict(extra="allow")

    receive: float
    decode: float
    preprocess: float
    infer: float
    postprocess: float
    total: float


class AnswerWarning(BaseModel):
    """Something the answer's reader should know: an input outside its model's input quality
    gate under ``action: warn`` (rejected 422 ``input_out_of_range`` under ``reject``)."""

    code: str = Field(description="Stable code, e.g. 'input_out_of_range'.")
    message: str = Field(description="Which input and feature, and the accepted range.")
    feature: str | None = Field(None, description="The quality feature outside its range, e.g. 'std', 'extent_max_mm'.")


class InstanceClassificationPublic(BaseModel):
    sop_instance_uid: str
    top_label: str
    probabilities: list[LabelProbability] = Field(description="One entry per label, highest first.")


class ClassificationPublic(BaseModel):
    """For one instance, ``top_label`` / ``probabilities`` answer it; for several (a series),
    ``instances`` holds one answer per instance and the top-level fields are null."""

    model: str
    model_version: str
    task: Task
    top_label: str | None
    probabilities: list[LabelProbability] | None = Field(description="One entry per label, highest first.")
    instances: list[InstanceClassificationPublic] | None = None
    preprocessing: dict[str, Any] = Field(description="What was applied to the (first) image, e.g. the window used.")
    warnings: list[AnswerWarning] = Field(default_factory=list, description="Inputs outside the model's input quality gate (action: warn).")
    timings_ms: StageTimings
    request_id: str


class MeasurementPublic(BaseModel):
    label: str
    voxels: int
    volume_ml: float = Field(description="Volume in millilitres, from the real voxel spacing.")
    components: int = Field(description="Connected components (e.g. separate lesions).")
    largest_diameter_mm: float = Field(description="Largest voxel-centre distance within one component, in mm.")


class SliceFramePublic(BaseModel):
    """Where one slice of the answer's grid comes from in a multi-frame source."""

    instance: int = Field(description="Index into grid.sop_instance_uids")
    frame: int = Field(description="Frame number within that instance, 1-based")


class GridPublic(BaseModel):
    """The voxel grid of the answer: the series as sent, slices sorted along the normal."""

    shape: list[int] = Field(description="[slices, rows, columns]")
    spacing_mm: list[float] = Field(description="[slice, row, column] spacing in mm")
    affine_lps: list[list[float]] = Field(description="4x4 matrix: (slice, row, column, 1) → LPS mm")
    sop_instance_uids: list[str] = Field(
        description="The distinct source instances, in the slice order of their first slice: one UID per "
        "single-frame instance, the one UID of a multi-frame (e.g. enhanced MR/CT) instance once, not once per frame"
    )
    frames: list[SliceFramePublic] | None = Field(
        None,
        description="Only when a source is multi-frame: per slice (slice order), the index of its instance in "
        "sop_instance_uids and its frame number (1-based, as DICOM's Referenced Frame Number)",
    )


class SegmentationPublic(BaseModel):
    model: str
    model_version: str
    task: Task
    labels: list[str]
    measurements: list[MeasurementPublic]
    grid: GridPublic
    masks: dict[str, dict[str, Any]] | None = Field(
        None, description="With format=rle: per class, {shape, order: 'C', counts} run lengths starting with background."
    )
    patches: int = Field(description="Network inputs run (slices or sliding-window patches).")
    batches: int = Field(description="Triton requests made.")
    preprocessing: dict[str, Any]
    warnings: list[AnswerWarning] = Field(default_factory=list, description="Inputs outside the model's input quality gate (action: warn).")
    timings_ms: StageTimings
    request_id: str


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    triton: bool
    models: dict[str, bool] = Field(description="Readiness by model name; empty when API keys are configured (the route is open)")
    not_servable: dict[str, str] = Field(
        default_factory=dict, description="Why each loaded model this gateway cannot serve is not servable; empty when API keys are configured"
    )
    models_ready: int
    models_total: int


class ViewerLabel(BaseModel):
    """One foreground class of a segmentation and the colour it is drawn in."""

    value: int = Field(description="The class value in the label map (1, 2, ...).")
    label: str
    color: str = Field(description="The overlay colour, '#rrggbb'.")


class ViewerSlice(BaseModel):
    """One rendered slice of the source with its overlay."""

    index: int = Field(description="The slice's index in the answer's grid (slice order, 0-based).")
    png: str = Field(description="Base64 PNG: the windowed slice with the coloured overlay, at most 512 px on its longer side.")
    foreground_voxels: int = Field(description="Voxels of any foreground class in this slice.")


class ViewerPublic(BaseModel):
    """``format=viewer``: what a page needs to show a segmentation slice by slice."""

    model: str
    task: Task
    labels: list[ViewerLabel]
    slices: list[ViewerSlice]
    default_slice: int = Field(description="The index of the rendered slice with the most foreground.")
    measurements: list[MeasurementPublic]
    shape: list[int] = Field(description="[slices, rows, columns] of the answer's grid (the source's).")
    stride: int = Field(1, description="Every stride-th slice is rendered (1: all of them).")


class DriftPointPublic(BaseModel):
    """A model's drift scores as computed at one time (at most one point per minute)."""

    at: datetime = Field(description="When the scores were computed (UTC).")
    scores: dict[str, dict[str, float | None]] = Field(description="Per feature: psi, and ks for numeric features (null: not finite).")


class DriftPublic(BaseModel):
    """One gateway worker's drift monitor of a model: its scores now and over the last hour."""

    model: str
    window_samples: int = Field(description="Requests in the drift window (of the answering worker).")
    min_samples: int = Field(description="Requests the window needs before scores are computed.")
    features: dict[str, dict[str, float | None]] = Field(
        description="Every feature of the model's drift reference: its current psi (and ks for numeric ones); psi null "
        "until the window holds min_samples requests with that feature. Empty for a model exported without a drift reference."
    )
    history: list[DriftPointPublic] = Field(description="The last 60 minutes, at most one point per minute, oldest first; empty when nothing was scored.")
