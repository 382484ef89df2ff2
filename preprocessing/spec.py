"""The declarative preprocessing spec: what a model expects its input to look like.

A spec is plain data. It round-trips through JSON (``to_dict`` / ``from_dict``) because export
stores it inside the Triton model config, and the gateway reads it back from there: the
model config is the single source of truth for how a model's inputs are prepared.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

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


@dataclass(frozen=True)
class WindowSpec:
    """A VOI window mapping modality values (HU for CT) onto [0, 1].

    Either a ``preset`` name from :data:`WINDOW_PRESETS_HU`, explicit ``center``/``width``
    (in modality units), or ``from_dicom=True`` to use the instance's own
    (0028,1050) *Window Center* / (0028,1051) *Window Width* (first value).
    """

    preset: str | None = None
    center: float | None = None
    width: float | None = None
    from_dicom: bool = False
    function: str = "LINEAR"

    def __post_init__(self) -> None:
        chosen = sum([self.preset is not None, self.center is not None, self.from_dicom])
        if chosen != 1:
            raise InvalidSpec("window: give exactly one of 'preset', 'center'+'width' or 'from_dicom'")
        if self.preset is not None and self.preset not in WINDOW_PRESETS_HU:
            raise InvalidSpec(
                f"window: unknown preset {self.preset!r}; known: {', '.join(sorted(WINDOW_PRESETS_HU))}"
            )
        if self.center is not None and (self.width is None or self.width <= 0):
            raise InvalidSpec("window: 'width' must be given and > 0 with 'center'")
        if self.function not in VOI_FUNCTIONS:
            raise InvalidSpec(f"window: function must be one of {VOI_FUNCTIONS}, got {self.function!r}")

    def resolve(self) -> tuple[float, float] | None:
        """(center, width) in modality units, or None when the instance decides."""
        if self.preset is not None:
            return WINDOW_PRESETS_HU[self.preset]
        if self.center is not None:
            return float(self.center), float(self.width)  # type: ignore[arg-type]
        return None


@dataclass(frozen=True)
class PreprocessingSpec:
    """How one model input is prepared from a single-frame DICOM instance.

    ``modalities``: accepted (0008,0060) *Modality* values; empty accepts any.
    ``window``: VOI window to [0, 1]; None leaves modality values (e.g. HU) unwindowed.
    ``output_size``: (rows, columns) the in-plane image is resampled to, or None to keep it.
    ``layout``: ``"CHW"`` — one channel first, as 2D networks take it.
    ``dtype``: numpy dtype name of the model input tensor.
    """

    modalities: tuple[str, ...] = ()
    window: WindowSpec | None = None
    output_size: tuple[int, int] | None = None
    layout: str = "CHW"
    dtype: str = "float32"
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.layout != "CHW":
            raise InvalidSpec(f"layout: only 'CHW' is supported, got {self.layout!r}")
        if self.dtype not in ("float32", "float16"):
            raise InvalidSpec(f"dtype: must be 'float32' or 'float16', got {self.dtype!r}")
        if self.output_size is not None and (
            len(self.output_size) != 2 or min(self.output_size) < 1
        ):
            raise InvalidSpec(f"output_size: expected [rows, columns] > 0, got {self.output_size!r}")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["modalities"] = list(self.modalities)
        out["output_size"] = list(self.output_size) if self.output_size else None
        out["extra"] = dict(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PreprocessingSpec":
        if not isinstance(data, Mapping):
            raise InvalidSpec(f"spec must be a mapping, got {type(data).__name__}")
        known = {"modalities", "window", "output_size", "layout", "dtype", "extra"}
        unknown = set(data) - known
        if unknown:
            raise InvalidSpec(f"unknown spec keys: {', '.join(sorted(unknown))}")
        window = data.get("window")
        try:
            return cls(
                modalities=tuple(str(m).upper() for m in data.get("modalities", ())),
                window=WindowSpec(**window) if window is not None else None,
                output_size=tuple(int(v) for v in data["output_size"]) if data.get("output_size") else None,  # type: ignore[arg-type]
                layout=data.get("layout", "CHW"),
                dtype=data.get("dtype", "float32"),
                extra=dict(data.get("extra", {})),
            )
        except TypeError as exc:
            raise InvalidSpec(f"malformed spec: {exc}") from exc
