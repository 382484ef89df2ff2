"""The declarative post-processing spec of one segmentation output: class scores → labels → refined labels.

A spec is plain data that round-trips through JSON (``to_dict`` / ``from_dict``): export writes
it into the model card's output, the gateway reads it back and runs it on every answer.

Steps run in order. The first steps turn [C, *spatial] class scores into a uint8 label map
(``threshold`` or ``argmax``; argmax when none is given); the rest refine that label map
(``largest_component``, ``fill_holes``, ``remove_small_objects``, ``dilate``, ``erode``), on the
grid ``grid`` names: ``"model"`` — the model's prepared grid, at its voxel spacing — or
``"source"`` — the series as it was sent, at its spacing. Volumes and distances are in mm³ and mm.

Each op and the keys it takes (``labels`` null = every foreground label; ``connectivity`` is the
number of orthogonal hops to a neighbour, 1 = faces, ``ndim`` or more = faces, edges and corners):

- ``threshold`` {``label`` >= 1, ``probability`` in (0, 1)}: voxels whose probability of class
  ``label`` is strictly greater than ``probability`` get ``label``, the rest 0 (torch's
  ``mask > .5``); of several threshold steps, a later one wins where it fires.
- ``argmax`` {}: the class of highest score, the first on a tie.
- ``largest_component`` {``labels``, ``connectivity`` = 3}: per label, only its largest
  connected component stays (MONAI ``KeepLargestConnectedComponent(independent=True)``).
- ``fill_holes`` {``labels``, ``connectivity`` = 1}: per label, every voxel that is not that label
  and cannot reach the array border through voxels that are not that label gets it (MONAI
  ``FillHoles``: an enclosed other label is filled over too).
- ``remove_small_objects`` {``min_size_mm3`` > 0, ``labels``, ``connectivity`` = 1}: per label,
  components of fewer than ceil(min_size_mm3 / voxel volume) voxels become background (MONAI
  ``RemoveSmallObjects(by_measure=True)`` on that label's mask).
- ``dilate`` / ``erode`` {``mm`` > 0, ``labels``}: binary dilation / erosion per label by the
  ellipsoid of radius ``mm`` on the grid's spacing — every voxel within Euclidean distance ``mm``
  of the label / only voxels whose every voxel within ``mm`` is the label (outside the array
  counts as background). Dilation grows into background only, lower labels first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from preprocessing.errors import InvalidSpec

#: Each op and the keys it takes, besides ``op``.
POSTPROCESSING_OPS: dict[str, tuple[str, ...]] = {
    "threshold": ("label", "probability"),
    "argmax": (),
    "largest_component": ("labels", "connectivity"),
    "fill_holes": ("labels", "connectivity"),
    "remove_small_objects": ("min_size_mm3", "labels", "connectivity"),
    "dilate": ("mm", "labels"),
    "erode": ("mm", "labels"),
}

#: The ops that turn class scores into labels; they may only open a spec.
SCORE_OPS = ("threshold", "argmax")

#: Where the label-map steps run: the model's prepared grid, or the series as sent.
GRIDS = ("model", "source")

#: ``connectivity`` when a step does not give it.
DEFAULT_CONNECTIVITY = {"largest_component": 3, "fill_holes": 1, "remove_small_objects": 1}


def _fail(key: str, message: str) -> InvalidSpec:
    return InvalidSpec(f"postprocessing: {key}: {message}")


@dataclass(frozen=True)
class PostprocessingStep:
    """One step; only the fields its op takes are set (``to_dict`` writes only those)."""

    op: str
    label: int | None = None
    probability: float | None = None
    labels: tuple[int, ...] | None = None
    connectivity: int | None = None
    min_size_mm3: float | None = None
    mm: float | None = None

    def __post_init__(self) -> None:
        if self.op not in POSTPROCESSING_OPS:
            raise _fail("op", f"must be one of {tuple(POSTPROCESSING_OPS)}, got {self.op!r}")
        takes = POSTPROCESSING_OPS[self.op]
        for key in ("label", "probability", "labels", "connectivity", "min_size_mm3", "mm"):
            if key not in takes and getattr(self, key) is not None:
                raise _fail(key, f"{self.op!r} does not take it")
        if self.op in DEFAULT_CONNECTIVITY and self.connectivity is None:
            object.__setattr__(self, "connectivity", DEFAULT_CONNECTIVITY[self.op])
        if self.op == "threshold":
            if not (isinstance(self.label, int) and self.label >= 1):
                raise _fail("label", f"'threshold' needs a class index >= 1, got {self.label!r}")
            if not (isinstance(self.probability, float) and 0.0 < self.probability < 1.0):
                raise _fail("probability", f"'threshold' needs a probability in (0, 1), got {self.probability!r}")
        if self.labels is not None:
            if not (isinstance(self.labels, tuple) and self.labels and all(isinstance(v, int) and 1 <= v <= 255 for v in self.labels)):
                raise _fail("labels", f"must be null or a non-empty list of labels in 1..255, got {self.labels!r}")
        if self.connectivity is not None and self.connectivity not in (1, 2, 3):
            raise _fail("connectivity", f"must be 1, 2 or 3, got {self.connectivity!r}")
        if self.op == "remove_small_objects" and not (
            isinstance(self.min_size_mm3, float) and math.isfinite(self.min_size_mm3) and self.min_size_mm3 > 0
        ):
            raise _fail("min_size_mm3", f"must be a finite volume > 0 in mm³, got {self.min_size_mm3!r}")
        if self.op in ("dilate", "erode") and not (isinstance(self.mm, float) and math.isfinite(self.mm) and self.mm > 0):
            raise _fail("mm", f"must be a finite distance > 0 in mm, got {self.mm!r}")

    @property
    def scores_to_labels(self) -> bool:
        """Whether this step turns class scores into labels (``threshold``, ``argmax``)."""
        return self.op in SCORE_OPS

    def to_dict(self) -> dict[str, Any]:
        """The op and only the keys it takes (``labels`` as a list)."""
        out: dict[str, Any] = {"op": self.op}
        for key in POSTPROCESSING_OPS[self.op]:
            value = getattr(self, key)
            out[key] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, data: Any) -> "PostprocessingStep":
        if not isinstance(data, Mapping):
            raise _fail("steps", f"each step must be a mapping, got {type(data).__name__}")
        op = data.get("op")
        if op not in POSTPROCESSING_OPS:
            raise _fail("op", f"must be one of {tuple(POSTPROCESSING_OPS)}, got {op!r}")
        unknown = set(data) - {"op", *POSTPROCESSING_OPS[op]}
        if unknown:
            raise _fail(sorted(unknown)[0], f"{op!r} does not take {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {}
        for key in POSTPROCESSING_OPS[op]:
            value = data.get(key)
            if value is None:
                continue
            if key in ("label", "connectivity"):
                values[key] = _integer(key, value)
            elif key == "labels":
                if not isinstance(value, (list, tuple)):
                    raise _fail("labels", f"must be null or a list of integers, got {type(value).__name__}")
                values[key] = tuple(_integer("labels", v) for v in value)
            else:
                values[key] = _number(key, value)
        return cls(op=op, **values)


def _integer(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(key, f"must be an integer, got {value!r}")
    return value


def _number(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(key, f"must be a number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class PostprocessingSpec:
    """The ordered steps of one output and the ``grid`` its label-map steps run on."""

    steps: tuple[PostprocessingStep, ...] = ()
    grid: str = "model"

    def __post_init__(self) -> None:
        if self.grid not in GRIDS:
            raise _fail("grid", f"must be one of {GRIDS}, got {self.grid!r}")
        if not isinstance(self.steps, tuple) or not all(isinstance(s, PostprocessingStep) for s in self.steps):
            raise _fail("steps", "must be a tuple of PostprocessingStep")
        scoring = self.score_steps
        if any(step.scores_to_labels for step in self.steps[len(scoring):]):
            raise _fail("steps", "'threshold' and 'argmax' may only come first (they turn class scores into labels)")
        if any(step.op == "argmax" for step in scoring) and len(scoring) > 1:
            raise _fail("steps", "'argmax' is one step of its own; it does not combine with 'threshold'")

    @property
    def score_steps(self) -> tuple[PostprocessingStep, ...]:
        """The leading steps that turn class scores into labels (may be empty: argmax)."""
        count = 0
        while count < len(self.steps) and self.steps[count].scores_to_labels:
            count += 1
        return self.steps[:count]

    @property
    def label_steps(self) -> tuple[PostprocessingStep, ...]:
        """The steps that refine a label map, in order."""
        return self.steps[len(self.score_steps):]

    def to_dict(self) -> dict[str, Any]:
        return {"steps": [step.to_dict() for step in self.steps], "grid": self.grid}

    @classmethod
    def from_dict(cls, data: Any) -> "PostprocessingSpec":
        if not isinstance(data, Mapping):
            raise _fail("postprocessing", f"must be a mapping, got {type(data).__name__}")
        unknown = set(data) - {"steps", "grid"}
        if unknown:
            raise _fail(sorted(unknown)[0], "unknown key")
        steps = data.get("steps", [])
        if not isinstance(steps, (list, tuple)):
            raise _fail("steps", f"must be a list, got {type(steps).__name__}")
        return cls(steps=tuple(PostprocessingStep.from_dict(step) for step in steps), grid=data.get("grid", "model"))
