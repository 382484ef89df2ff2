"""The region a cascade's localiser found: a bounding box of one label, plus a margin, on the
grid the later stage crops.

The rule is the one deepbet (University of Münster, MIT) uses between its two networks, with
the plane fraction and the margins as parameters: on the localiser's grid, an index of an axis
belongs to the box when the label covers more than ``min_plane_fraction`` of the plane through
it; the box's centre and size (in voxel edges: a box [lo, hi) has centre (lo + hi) / 2 and size
hi - lo) are scaled to the cropped grid, the size grows by ``margin_fraction`` of itself and by
``margin_mm`` on each side, both are rounded half to even, and the box is [int(c - s/2),
int(c + s/2)) clipped to the grid — in float32, as deepbet's torch code computes it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from preprocessing.errors import InvalidSpec

#: Index slices of a box on the grid a later stage crops, one per axis.
Box = tuple[slice, ...]


@dataclass(frozen=True)
class RegionSpec:
    """How the localiser's label map becomes the later stage's crop (see the module doc).

    ``label``: the localiser's class that marks the region (>= 1).
    ``min_plane_fraction``: an index counts when more than this fraction of its plane is the
    label (0: any voxel; deepbet: 0.02).
    ``margin_fraction``: added on each side, as a fraction of the box's size (deepbet: 0.1).
    ``margin_mm``: added on each side, in mm of the cropped grid.
    """

    label: int = 1
    min_plane_fraction: float = 0.0
    margin_fraction: float = 0.0
    margin_mm: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.label, bool) or not isinstance(self.label, int) or self.label < 1:
            raise InvalidSpec(f"region.label: must be an integer >= 1, got {self.label!r}")
        for key in ("min_plane_fraction", "margin_fraction", "margin_mm"):
            value = getattr(self, key)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise InvalidSpec(f"region.{key}: must be a finite number >= 0, got {value!r}")
        if self.min_plane_fraction >= 1:
            raise InvalidSpec(f"region.min_plane_fraction: must be < 1, got {self.min_plane_fraction!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> "RegionSpec":
        if not isinstance(data, Mapping):
            raise InvalidSpec(f"region: expected a mapping, got {type(data).__name__}")
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise InvalidSpec(f"region: unknown keys {', '.join(sorted(unknown))}")
        try:
            return cls(**{key: value if key == "label" else float(value) for key, value in data.items()})
        except (TypeError, ValueError) as exc:
            raise InvalidSpec(f"region: {exc}") from exc


def region_box(
    labels: np.ndarray, spec: RegionSpec, target_shape: Sequence[int], target_spacing_mm: Sequence[float]
) -> Box | None:
    """The box of ``spec.label`` in the localiser's ``labels`` (its own grid), on a grid of
    ``target_shape`` (same extent, reached from it by a resize: axis scale target / labels) at
    ``target_spacing_mm``; None when no plane holds enough of the label."""
    mask = labels == spec.label
    centres, sizes = [], []
    for axis in range(mask.ndim):
        others = tuple(a for a in range(mask.ndim) if a != axis)
        fraction = mask.mean(axis=others, dtype=np.float32)
        hit = np.flatnonzero(fraction > np.float32(spec.min_plane_fraction))
        if hit.size == 0:
            return None
        low, high = int(hit[0]), int(hit[-1]) + 1
        centres.append(np.float32(low + high) / np.float32(2))
        sizes.append(np.float32(high - low))
    box = []
    for axis, (centre, size) in enumerate(zip(centres, sizes)):
        scale = np.float32(target_shape[axis]) / np.float32(mask.shape[axis])
        centre, size = centre * scale, size * scale
        size = (np.float32(1) + np.float32(2 * spec.margin_fraction)) * size
        if spec.margin_mm:
            size = size + np.float32(2 * spec.margin_mm / target_spacing_mm[axis])
        centre, size = np.round(centre), np.round(size)
        low, high = int(centre - size / np.float32(2)), int(centre + size / np.float32(2))
        box.append(slice(max(0, low), min(int(target_shape[axis]), high)))
    if any(part.stop <= part.start for part in box):
        return None
    return tuple(box)
