"""The declarative preprocessing spec: what a model expects its input to look like.

A spec is plain data. It round-trips through JSON (``to_dict`` / ``from_dict``) because export
stores it inside the Triton model config, and the gateway reads it back from there: the
model config is the single source of truth for how a model's inputs are prepared.

The stages a spec drives run in this order (see :mod:`preprocessing.pipeline`)::

    decode → Modality LUT (HU) / SUV → reorient → resample to spacing_mm     (modality units)
           → clip_range → window | normalize                                  (intensity)
           → output_size (resize | crop_pad) → layout, dtype                  (tensor shape)

Physical resampling (``spacing_mm``) works on modality values, as SimpleITK and nnU-Net do;
``output_size`` is the tensor's final shape, reached after the intensity mapping, as the 2D
models of this repository were trained.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

import math

from .errors import InvalidSpec

#: Named CT windows as (center_hu, width_hu), the values radiology viewers ship with.
WINDOW_PRESETS_HU: dict[str, tuple[float, float]] = {
    "lung": (-600.0, 1500.0),
    "mediastinum": (50.0, 350.0),
    "abdomen": (40.0, 400.0),
    "liver": (60.0, 160.0),
    "brain": (40.0, 80.0),
    "subdural": (75.0, 215.0),
    "stroke": (40.0, 40.0),
    "bone": (400.0, 1800.0),
}

VOI_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")
LAYOUTS = ("CHW", "CDHW")
DTYPES = ("float32", "float16")
SIZE_MODES = ("resize", "crop_pad")
NORMALIZE_METHODS = ("zscore", "percentile")
#: ``resize_mode`` values (see :data:`preprocessing.resample.RESIZE_MODES`, kept equal by a test):
#: ``torch.nn.functional.interpolate``'s semantics on the same sizes.
RESIZE_MODES = ("linear", "nearest", "nearest-exact", "cubic", "area")
#: Operations of a ``normalize_steps`` chain and the keys each takes (see :class:`NormalizeStep`).
NORMALIZE_OPS: dict[str, tuple[str, ...]] = {
    "clip": ("low", "high"),
    "clip_percentiles": ("low", "high", "nonzero", "of"),
    "zscore": ("nonzero", "ddof"),
    "scale_shift": ("scale", "shift"),
    "window": ("center", "width"),
}
#: Where the statistics of ``normalize`` / ``normalize_steps`` are taken: ``input`` — before the
#: resize to ``output_size`` (today's order), ``output`` — after it, on the model's grid.
STATS_GRIDS = ("input", "output")
#: Where a ``clip_percentiles`` step takes its percentiles: ``image`` — the image it clips;
#: ``localiser`` — in a cascade's later stage, the values the localiser stage's own
#: ``clip_percentiles`` step computed on its input (as deepbet normalizes its second stage).
PERCENTILE_SOURCES = ("image", "localiser")
#: Keys of a step written only when they differ from their default, so that chains written
#: before the keys existed serialize exactly as before.
_STEP_KEY_DEFAULTS: dict[str, Any] = {"ddof": 0, "of": "image"}
SUV_KINDS = ("bw",)
#: Orientation letters by patient axis, in the LPS convention of DICOM (PS3.3 C.7.6.2.1.1).
ORIENTATION_AXES = ("LR", "PA", "SI")


@dataclass(frozen=True)
class WindowSpec:
    """A VOI window mapping modality values (HU for CT) onto [0, 1].

    Exactly one of: a ``preset`` name from :data:`WINDOW_PRESETS_HU`; explicit ``center`` and
    ``width`` in modality units; or ``from_dicom=True`` to use the instance's own VOI LUT
    module, view number ``voi_index`` (0-based) of a multi-valued (0028,1050) *Window Center* /
    (0028,1051) *Window Width* or of the (0028,3010) *VOI LUT Sequence*.

    ``function`` is the (0028,1056) *VOI LUT Function* to apply. ``None`` means ``LINEAR`` for a
    preset or explicit window, and for ``from_dicom`` the instance's whole VOI LUT module as
    pydicom's ``apply_voi_lut`` applies it (VOI LUT Sequence first, else the window with the
    instance's own VOI LUT Function). An explicit function with ``from_dicom`` applies that
    function to the instance's window center/width.
    """

    preset: str | None = None
    center: float | None = None
    width: float | None = None
    from_dicom: bool = False
    function: str | None = None
    voi_index: int = 0

    def __post_init__(self) -> None:
        chosen = sum([self.preset is not None, self.center is not None, bool(self.from_dicom)])
        if chosen != 1:
            raise InvalidSpec("window: give exactly one of 'preset', 'center'+'width' or 'from_dicom'")
        if self.preset is not None and self.preset not in WINDOW_PRESETS_HU:
            raise InvalidSpec(
                f"window: unknown preset {self.preset!r}; known: {', '.join(sorted(WINDOW_PRESETS_HU))}"
            )
        if self.center is not None and (self.width is None or self.width <= 0):
            raise InvalidSpec("window: 'width' must be given and > 0 with 'center'")
        if self.width is not None and self.center is None:
            raise InvalidSpec("window: 'width' needs 'center'")
        if self.function is not None and self.function not in VOI_FUNCTIONS:
            raise InvalidSpec(f"window: function must be one of {VOI_FUNCTIONS}, got {self.function!r}")
        fixed = self.resolve()
        if fixed is not None and self.applied_function == "LINEAR" and fixed[1] < 1:
            raise InvalidSpec("window: a LINEAR window needs width >= 1 (DICOM PS3.3 C.11.2.1.2.1)")
        if not isinstance(self.voi_index, int) or self.voi_index < 0:
            raise InvalidSpec(f"window: voi_index must be an integer >= 0, got {self.voi_index!r}")

    @property
    def applied_function(self) -> str | None:
        """The VOI LUT Function to apply; ``None`` when the instance's own VOI LUT module decides."""
        if self.function is not None:
            return self.function
        return None if self.from_dicom else "LINEAR"

    def resolve(self) -> tuple[float, float] | None:
        """(center, width) in modality units, or None when the instance decides."""
        if self.preset is not None:
            return WINDOW_PRESETS_HU[self.preset]
        if self.center is not None:
            return float(self.center), float(self.width)  # type: ignore[arg-type]
        return None


@dataclass(frozen=True)
class NormalizeSpec:
    """Intensity normalization for modalities without an absolute scale (MR) or for US.

    ``zscore``: (value - mean) / std over the image or volume (over voxels != 0 when
    ``nonzero``), as MONAI's ``NormalizeIntensity`` does.
    ``percentile``: the ``lower``/``upper`` percentiles map to 0 and 1 (clipped to [0, 1] when
    ``clip``), as MONAI's ``ScaleIntensityRangePercentiles`` does.
    """

    method: str = "zscore"
    lower: float = 0.5
    upper: float = 99.5
    clip: bool = True
    nonzero: bool = False

    def __post_init__(self) -> None:
        if self.method not in NORMALIZE_METHODS:
            raise InvalidSpec(f"normalize: method must be one of {NORMALIZE_METHODS}, got {self.method!r}")
        if not 0.0 <= self.lower < self.upper <= 100.0:
            raise InvalidSpec(
                f"normalize: percentiles need 0 <= lower < upper <= 100, got {self.lower!r}, {self.upper!r}"
            )


@dataclass(frozen=True)
class NormalizeStep:
    """One step of an ordered intensity chain (``PreprocessingSpec.normalize_steps``).

    ``clip``: clip to [``low``, ``high``] in the values the step receives (either may be null).
    ``clip_percentiles``: clip to the ``low`` / ``high`` percentiles (0-100, numpy's linear
    definition, which is also ``torch.quantile``'s) of the image, of its voxels != 0 when
    ``nonzero`` — MONAI's ``ClipIntensityPercentiles``; with ``of="localiser"`` the percentile
    values are those the localiser stage of a cascade computed (:data:`PERCENTILE_SOURCES`).
    ``zscore``: (v - mean) / std, over the image or, with ``nonzero``, over and only on
    voxels != 0 — MONAI's ``NormalizeIntensity``. ``ddof`` 0 is the population std (MONAI,
    numpy), 1 the sample std (``torch.Tensor.std()``'s default). A constant image is only
    shifted.
    ``scale_shift``: v * ``scale`` + ``shift``.
    ``window``: the DICOM LINEAR VOI window (``center``, ``width`` in the values the step
    receives) onto [0, 1].
    Statistics are taken on the grid ``stats_grid`` names, in float64.
    """

    op: str
    low: float | None = None
    high: float | None = None
    nonzero: bool = False
    scale: float = 1.0
    shift: float = 0.0
    center: float | None = None
    width: float | None = None
    ddof: int = 0
    of: str = "image"

    def __post_init__(self) -> None:
        if self.ddof not in (0, 1):
            raise InvalidSpec(f"normalize_steps: 'ddof' must be 0 or 1, got {self.ddof!r}")
        if self.of not in PERCENTILE_SOURCES:
            raise InvalidSpec(f"normalize_steps: 'of' must be one of {PERCENTILE_SOURCES}, got {self.of!r}")
        if self.op not in NORMALIZE_OPS:
            raise InvalidSpec(f"normalize_steps: op must be one of {tuple(NORMALIZE_OPS)}, got {self.op!r}")
        if self.op == "clip":
            if self.low is None and self.high is None:
                raise InvalidSpec("normalize_steps: 'clip' needs 'low' or 'high'")
            if self.low is not None and self.high is not None and self.low >= self.high:
                raise InvalidSpec(f"normalize_steps: 'clip' needs low < high, got {self.low!r}, {self.high!r}")
        if self.op == "clip_percentiles" and not (
            self.low is not None and self.high is not None and 0.0 <= self.low < self.high <= 100.0
        ):
            raise InvalidSpec(
                f"normalize_steps: 'clip_percentiles' needs 0 <= low < high <= 100, got {self.low!r}, {self.high!r}"
            )
        if self.op == "scale_shift" and not (math.isfinite(self.scale) and math.isfinite(self.shift)):
            raise InvalidSpec("normalize_steps: 'scale_shift' needs finite 'scale' and 'shift'")
        if self.op == "window" and (self.center is None or self.width is None or self.width < 1):
            raise InvalidSpec("normalize_steps: 'window' needs 'center' and 'width' >= 1")

    def to_dict(self) -> dict[str, Any]:
        """The op and only the keys it takes (``ddof`` and ``of`` only when not their default)."""
        keys = NORMALIZE_OPS[self.op]
        return {"op": self.op, **{
            key: getattr(self, key) for key in keys
            if key not in _STEP_KEY_DEFAULTS or getattr(self, key) != _STEP_KEY_DEFAULTS[key]
        }}

    @classmethod
    def from_dict(cls, data: Any) -> "NormalizeStep":
        if not isinstance(data, Mapping):
            raise InvalidSpec(f"normalize_steps: each step must be a mapping, got {type(data).__name__}")
        op = data.get("op")
        if op not in NORMALIZE_OPS:
            raise InvalidSpec(f"normalize_steps: op must be one of {tuple(NORMALIZE_OPS)}, got {op!r}")
        unknown = set(data) - {"op", *NORMALIZE_OPS[op]}
        if unknown:
            raise InvalidSpec(f"normalize_steps: {op!r} does not take {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {}
        for key in NORMALIZE_OPS[op]:
            if key in data and data[key] is not None:
                values[key] = _step_value(key, data[key])
        return cls(op=op, **values)


@dataclass(frozen=True)
class ForegroundCrop:
    """Crop to the bounding box of the foreground, plus a margin (MONAI's ``CropForeground``).

    Foreground is every voxel whose modality value (HU, SUV, MR signal; after reorientation
    and ``spacing_mm`` resampling, before the intensity steps) is greater than ``above``.
    The box grows by ``margin_mm`` (converted per axis to whole voxels, rounded up) plus
    ``margin_voxels`` on each side and is clipped to the image, as MONAI's
    ``CropForeground(select_fn=lambda x: x > above, margin=..., allow_smaller=True)`` does. An
    image without foreground is kept whole (and recorded so): the quality gate, not the crop,
    judges a blank input.
    """

    above: float = 0.0
    margin_mm: float = 0.0
    margin_voxels: int = 0

    def __post_init__(self) -> None:
        if not math.isfinite(self.above):
            raise InvalidSpec("crop_foreground: 'above' must be a finite number")
        if not (math.isfinite(self.margin_mm) and self.margin_mm >= 0):
            raise InvalidSpec(f"crop_foreground: 'margin_mm' must be >= 0, got {self.margin_mm!r}")
        if isinstance(self.margin_voxels, bool) or not isinstance(self.margin_voxels, int) or self.margin_voxels < 0:
            raise InvalidSpec(f"crop_foreground: 'margin_voxels' must be an integer >= 0, got {self.margin_voxels!r}")


@dataclass(frozen=True)
class PreprocessingSpec:
    """How one model input is prepared from a DICOM instance or series.

    ``modalities``: accepted (0008,0060) *Modality* values; empty accepts any.
    ``window``: VOI window to [0, 1]; None leaves modality values (e.g. HU) unwindowed.
    ``output_size``: final (rows, columns) for ``CHW`` or (depth, rows, columns) for ``CDHW``;
    reached by resize (``size_mode="resize"``, interpolation ``resize_mode``) or by centered
    crop/pad with ``pad_value`` (``size_mode="crop_pad"``). None keeps the size.
    ``resize_mode``: one of :data:`RESIZE_MODES`, with ``torch.nn.functional.interpolate``'s
    semantics (``align_corners=False``): ``"linear"`` (the default, today's), ``"nearest"``,
    ``"nearest-exact"``, ``"cubic"`` (bicubic, applied per axis) or ``"area"`` (adaptive
    average pooling).
    ``layout``: ``"CHW"`` — 2D, channels first: [C, H, W] for one instance and [N, C, H, W]
    (one item per slice) for a series; ``"CDHW"`` — 3D: [C, D, H, W].
    ``dtype``: numpy dtype name of the model input tensor.
    ``extra``: free-form, model-specific data carried along untouched.
    ``clip_range``: [lower, upper] in modality units (HU, SUV), either may be null.
    ``normalize``: z-score or percentile scaling; excludes ``window``.
    ``normalize_steps``: an ordered chain of :class:`NormalizeStep` (clip by values or
    percentiles, z-score, scale/shift, window) as a model's own pipeline writes it; excludes
    ``window`` and ``normalize``.
    ``stats_grid``: ``"input"`` (default) takes the statistics of ``normalize`` /
    ``normalize_steps`` before the resize to ``output_size``, ``"output"`` after it (the
    normalization then runs after the resize).
    ``crop_foreground``: crop to the foreground's bounding box plus a margin
    (:class:`ForegroundCrop`), before the intensity steps.
    ``suv``: ``"bw"`` converts PET activity (Bq/ml) to body-weight SUV.
    ``spacing_mm``: target spacing (rows, columns) or (slices, rows, columns) in mm; physical
    linear resampling on modality values.
    ``orientation``: three letters (one of L/R, P/A, S/I each) naming where array axes
    (depth, rows, columns) point, e.g. ``"SPL"`` for axial slices feet→head, rows
    anterior→posterior, columns right→left (the DICOM axial display). None keeps the sorted
    acquisition order.
    ``stack_slices``: for ``CHW`` on a series, the number of adjacent slices stacked as
    channels around each slice (2.5D); odd, 1 means plain 2D.
    ``channels``: 1 for grayscale models, 3 for RGB models (grayscale is repeated).
    """

    modalities: tuple[str, ...] = ()
    window: WindowSpec | None = None
    output_size: tuple[int, ...] | None = None
    layout: str = "CHW"
    dtype: str = "float32"
    extra: Mapping[str, Any] = field(default_factory=dict)
    clip_range: tuple[float | None, float | None] | None = None
    normalize: NormalizeSpec | None = None
    suv: str | None = None
    spacing_mm: tuple[float, ...] | None = None
    orientation: str | None = None
    size_mode: str = "resize"
    pad_value: float = 0.0
    stack_slices: int = 1
    channels: int = 1
    resize_mode: str = "linear"
    normalize_steps: tuple[NormalizeStep, ...] = ()
    stats_grid: str = "input"
    crop_foreground: ForegroundCrop | None = None

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise InvalidSpec(f"layout: must be one of {LAYOUTS}, got {self.layout!r}")
        if self.dtype not in DTYPES:
            raise InvalidSpec(f"dtype: must be 'float32' or 'float16', got {self.dtype!r}")
        dims = 2 if self.layout == "CHW" else 3
        if self.output_size is not None and (len(self.output_size) != dims or min(self.output_size) < 1):
            axes = "[rows, columns]" if dims == 2 else "[depth, rows, columns]"
            raise InvalidSpec(f"output_size: layout {self.layout} expects {axes} > 0, got {self.output_size!r}")
        if self.spacing_mm is not None and (
            len(self.spacing_mm) not in (dims, 3) or min(self.spacing_mm) <= 0
        ):
            raise InvalidSpec(
                f"spacing_mm: expected {'2 or 3' if dims == 2 else '3'} spacings > 0 in mm, got {self.spacing_mm!r}"
            )
        if self.window is not None and self.normalize is not None:
            raise InvalidSpec("give either 'window' or 'normalize', not both")
        if self.clip_range is not None:
            lower, upper = self.clip_range
            if lower is not None and upper is not None and lower >= upper:
                raise InvalidSpec(f"clip_range: lower must be < upper, got {list(self.clip_range)!r}")
        if self.suv is not None and self.suv not in SUV_KINDS:
            raise InvalidSpec(f"suv: must be one of {SUV_KINDS}, got {self.suv!r}")
        if self.orientation is not None:
            _check_orientation(self.orientation)
        if self.size_mode not in SIZE_MODES:
            raise InvalidSpec(f"size_mode: must be one of {SIZE_MODES}, got {self.size_mode!r}")
        if self.stack_slices < 1 or self.stack_slices % 2 == 0:
            raise InvalidSpec(f"stack_slices: must be an odd number >= 1, got {self.stack_slices!r}")
        if self.stack_slices > 1 and self.layout != "CHW":
            raise InvalidSpec("stack_slices: 2.5D stacks need layout 'CHW'")
        if self.channels not in (1, 3):
            raise InvalidSpec(f"channels: must be 1 (grayscale) or 3 (RGB), got {self.channels!r}")
        if self.channels == 3 and self.stack_slices > 1:
            raise InvalidSpec("channels: 2.5D stacks use the channels for slices; set channels to 1")
        if self.resize_mode not in RESIZE_MODES:
            raise InvalidSpec(f"resize_mode: must be one of {RESIZE_MODES}, got {self.resize_mode!r}")
        if self.stats_grid not in STATS_GRIDS:
            raise InvalidSpec(f"stats_grid: must be one of {STATS_GRIDS}, got {self.stats_grid!r}")
        if self.normalize_steps and (self.window is not None or self.normalize is not None):
            raise InvalidSpec("give 'normalize_steps' alone, without 'window' or 'normalize' (a chain can hold a window)")
        if not all(isinstance(step, NormalizeStep) for step in self.normalize_steps):
            raise InvalidSpec("normalize_steps: each step must be a NormalizeStep")
        if self.crop_foreground is not None and not isinstance(self.crop_foreground, ForegroundCrop):
            raise InvalidSpec("crop_foreground: must be a ForegroundCrop")

    @property
    def uses_localiser_statistics(self) -> bool:
        """Whether a ``clip_percentiles`` step takes its values from a cascade's localiser."""
        return any(step.op == "clip_percentiles" and step.of == "localiser" for step in self.normalize_steps)

    @property
    def volumetric(self) -> bool:
        """Whether a whole series is needed: a 3D volume or 2.5D stacks of adjacent slices."""
        return self.layout == "CDHW" or self.stack_slices > 1

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["modalities"] = list(self.modalities)
        for key in ("output_size", "clip_range", "spacing_mm"):
            value = getattr(self, key)
            out[key] = list(value) if value is not None else None
        out["extra"] = dict(self.extra)
        out["normalize_steps"] = [step.to_dict() for step in self.normalize_steps]
        # keys added after contract 1.0 are written only when set, so that a spec that does
        # not use them serializes exactly as before (exported models' configs are unchanged)
        for key, default in (("resize_mode", "linear"), ("normalize_steps", []), ("stats_grid", "input"), ("crop_foreground", None)):
            if out[key] == default:
                del out[key]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PreprocessingSpec":
        if not isinstance(data, Mapping):
            raise InvalidSpec(f"spec must be a mapping, got {type(data).__name__}")
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise InvalidSpec(f"unknown spec keys: {', '.join(sorted(unknown))}")
        try:
            return cls(
                modalities=tuple(str(m).upper() for m in data.get("modalities", ())),
                window=_nested(WindowSpec, data.get("window"), "window"),
                output_size=_ints(data.get("output_size")),
                layout=data.get("layout", "CHW"),
                dtype=data.get("dtype", "float32"),
                extra=dict(data.get("extra", {})),
                clip_range=_clip_range(data.get("clip_range")),
                normalize=_nested(NormalizeSpec, data.get("normalize"), "normalize"),
                suv=data.get("suv"),
                spacing_mm=_floats(data.get("spacing_mm")),
                orientation=data.get("orientation"),
                size_mode=data.get("size_mode", "resize"),
                pad_value=float(data.get("pad_value", 0.0)),
                stack_slices=int(data.get("stack_slices", 1)),
                channels=int(data.get("channels", 1)),
                resize_mode=data.get("resize_mode", "linear"),
                normalize_steps=_steps(data.get("normalize_steps")),
                stats_grid=data.get("stats_grid", "input"),
                crop_foreground=_nested(ForegroundCrop, data.get("crop_foreground"), "crop_foreground"),
            )
        except (TypeError, ValueError) as exc:
            raise InvalidSpec(f"malformed spec: {exc}") from exc


def _step_value(key: str, value: Any) -> Any:
    """A step key's value in its type: a flag, a count, a name or a number."""
    if key == "nonzero":
        return bool(value)
    if key == "ddof":
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidSpec(f"normalize_steps: 'ddof' must be 0 or 1, got {value!r}")
        return value
    if key == "of":
        return str(value)
    return float(value)


def _nested(kind: type, value: Any, name: str) -> Any:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidSpec(f"{name}: expected a mapping, got {type(value).__name__}")
    return kind(**value)


def _steps(value: Any) -> tuple[NormalizeStep, ...]:
    if value is None:
        return ()
    if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__iter__"):
        raise InvalidSpec(f"normalize_steps: expected a list of steps, got {type(value).__name__}")
    return tuple(NormalizeStep.from_dict(step) for step in value)


def _ints(value: Any) -> tuple[int, ...] | None:
    return tuple(int(v) for v in value) if value else None


def _floats(value: Any) -> tuple[float, ...] | None:
    return tuple(float(v) for v in value) if value else None


def _clip_range(value: Any) -> tuple[float | None, float | None] | None:
    if value is None:
        return None
    if len(value) != 2:
        raise InvalidSpec(f"clip_range: expected [lower, upper], got {value!r}")
    lower, upper = value
    return (None if lower is None else float(lower), None if upper is None else float(upper))


def _check_orientation(code: str) -> None:
    letters = str(code)
    used = sorted(axis for letter in letters for axis, pair in enumerate(ORIENTATION_AXES) if letter in pair)
    if len(letters) != 3 or used != [0, 1, 2]:
        raise InvalidSpec(
            f"orientation: expected three letters, one of each pair L/R, P/A, S/I (e.g. 'SPL'), got {code!r}"
        )
