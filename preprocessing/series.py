"""Series assembly: instances (or the frames of a multi-frame instance) → one volume grid.

Instances are grouped by (0020,000E) *Series Instance UID*; frames are sorted by the distance
of their (0020,0032) *Image Position (Patient)* along the slice normal, the cross product of
the (0020,0037) *Image Orientation (Patient)* cosines — never by (0020,0013) *Instance
Number*, which scanners and PACS exports do not keep in spatial order. :func:`plan_series`
reads headers only and checks that the frames form one grid; :func:`assemble_series` then
decodes them into a float32 volume of modality values (HU for CT).

What makes a volume wrong is either refused (:class:`InconsistentSeries`: several series,
mixed orientation, size or pixel spacing, two different frames at one position, instances
that cannot be placed) or reported as a :class:`SeriesWarning` (gaps, uneven spacing,
repeated instances, gantry tilt, frames without geometry) for the caller to judge.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .attributes import header_value
from .decode import Instance, InstanceSource, open_instance
from .errors import InconsistentSeries, InputTooLarge
from .frames import Frame, instance_frames
from .geometry import PlaneGeometry, axis_codes, pixel_spacing_mm, volume_affine
from .limits import current_limits
from .pixels import is_color
from .validate import check_header
from .volume import load_volume

#: Largest difference between direction cosines of frames that count as parallel.
ORIENTATION_TOLERANCE = 1e-3
#: Largest deviation of a slice step from the median step, relative to it, for uniform spacing.
SPACING_TOLERANCE = 0.01
#: A slice step this many times the median one is a gap (missing slices).
GAP_FACTOR = 1.5
#: In-plane drift of the slice positions per mm of slice step reported as gantry tilt (0.57°);
#: below it, rounding in scanners' (0020,0032) values (real oblique MR shows 0.3°) is not news.
_TILT_TOLERANCE = 0.01


@dataclass(frozen=True)
class SeriesWarning:
    """Something about a series a caller may want to act on. ``code`` is stable:
    ``gap``, ``non_uniform_spacing``, ``duplicate_instance``, ``gantry_tilt``,
    ``no_geometry``, ``no_pixel_spacing``."""

    code: str
    message: str


@dataclass(frozen=True)
class SeriesPlan:
    """The frames of one series sorted along the slice normal, and their grid; no pixels yet.

    ``slice_positions_mm``: distance of each frame along the normal (frame order, 1 mm apart,
    when there is no geometry). ``affine_lps``: (d, h, w, 1) → LPS mm; its slice column has
    the direction of the mean step between frames (sheared under gantry tilt) and the median
    step's length along the normal. ``spacing_mm``: (slice, row, column); the slice spacing is the
    median step along the normal.
    """

    frames: tuple[Frame, ...]
    slice_positions_mm: np.ndarray
    affine_lps: np.ndarray
    spacing_mm: tuple[float, float, float]
    warnings: tuple[SeriesWarning, ...]

    @property
    def shape(self) -> tuple[int, int, int]:
        pixels = self.frames[0].instance.pixels
        return (len(self.frames), pixels.rows, pixels.columns)

    @property
    def modality(self) -> str:
        return str(self.frames[0].instance.header.get("Modality", "")).upper()

    @property
    def is_color(self) -> bool:
        return is_color(self.frames[0].header)

    @property
    def uniform(self) -> bool:
        """Whether frames lie on a regular grid (no gap, spacing within tolerance)."""
        return not any(w.code in ("gap", "non_uniform_spacing") for w in self.warnings)

    @property
    def has_gap(self) -> bool:
        return any(w.code == "gap" for w in self.warnings)


@dataclass(frozen=True)
class Series:
    """An assembled series: ``volume`` (D, H, W) — or (D, H, W, 3) for color — float32
    modality values (HU for CT), sorted along the slice normal, with its ``affine_lps``,
    ``spacing_mm`` (slice, row, column), ``slice_positions_mm`` and ``warnings``."""

    volume: np.ndarray
    affine_lps: np.ndarray
    spacing_mm: tuple[float, float, float]
    slice_positions_mm: np.ndarray
    warnings: tuple[SeriesWarning, ...]
    modality: str
    photometric_interpretation: str

    @property
    def orientation(self) -> str:
        """Orientation letters of the (d, h, w) axes, e.g. ``"SPL"``."""
        return axis_codes(self.affine_lps)


def group_series(sources: Sequence[InstanceSource]) -> list[list[Instance]]:
    """Instances grouped by (0020,000E) *Series Instance UID*, largest group first."""
    groups: dict[str, list[Instance]] = {}
    for source in sources:
        instance = open_instance(source)
        groups.setdefault(str(header_value(instance.header, "SeriesInstanceUID", "")), []).append(instance)
    return sorted(groups.values(), key=len, reverse=True)


def plan_series(
    sources: Sequence[InstanceSource],
    *,
    orientation_tolerance: float = ORIENTATION_TOLERANCE,
    spacing_tolerance: float = SPACING_TOLERANCE,
    gap_factor: float = GAP_FACTOR,
) -> SeriesPlan:
    """Sort and check the frames of one series (headers only; pixels are not decoded).

    Raises :class:`InconsistentSeries` when the instances cannot form one volume, and
    :class:`~preprocessing.errors.InvalidDicom` / ``MissingPixelData`` for a broken instance.
    """
    if not sources:
        raise InconsistentSeries("no DICOM instances were given; send the instances of one series")
    limit = current_limits().max_instances
    if len(sources) > limit:
        raise InputTooLarge(f"the series has {len(sources)} instances; at most {limit} are accepted")
    groups = group_series(sources)
    if len(groups) > 1:
        sizes = ", ".join(str(len(group)) for group in groups)
        raise InconsistentSeries(
            f"the {sum(len(g) for g in groups)} instances belong to {len(groups)} series "
            f"({sizes} instances); send one series per request"
        )
    instances, warnings = _drop_repeated_instances(groups[0])
    _check_size(instances)
    frames = [frame for instance in instances for frame in instance_frames(instance)]
    for frame in frames:
        check_header(frame.header)
    _check_same_image_type(frames)
    spacing = pixel_spacing_mm(frames[0].header)
    if spacing is None:
        warnings.append(SeriesWarning("no_pixel_spacing", "no (0028,0030) Pixel Spacing; 1 mm assumed"))
        spacing = (1.0, 1.0)
    with_plane = sum(frame.plane is not None for frame in frames)
    if with_plane == 0:
        if len(instances) > 1:
            raise InconsistentSeries(
                f"{len(instances)} instances have no (0020,0032) Image Position / (0020,0037) Image "
                "Orientation (Patient), so they cannot be put in order; send a series with geometry"
            )
        if len(frames) > 1:
            warnings.append(
                SeriesWarning("no_geometry", f"{len(frames)} frames without positions, kept in stored order 1 mm apart")
            )
        affine = np.diag([1.0, spacing[0], spacing[1], 1.0])
        return SeriesPlan(
            frames=tuple(frames),
            slice_positions_mm=np.arange(len(frames), dtype=np.float64),
            affine_lps=affine,
            spacing_mm=(1.0, spacing[0], spacing[1]),
            warnings=tuple(warnings),
        )
    if with_plane < len(frames):
        raise InconsistentSeries(
            f"{len(frames) - with_plane} of {len(frames)} frames have no (0020,0032) Image Position "
            "(Patient) or (0020,0037) Image Orientation (Patient); they cannot be placed in the volume"
        )
    _check_parallel(frames, orientation_tolerance)
    return _sorted_plan(frames, spacing, warnings, spacing_tolerance, gap_factor)


def assemble_series(sources: Sequence[InstanceSource], **tolerances: float) -> Series:
    """One series → a float32 volume of modality values with its geometry.

    ``sources``: Datasets, Part 10 bytes or paths (one multi-frame instance or many
    single-frame ones). ``tolerances`` go to :func:`plan_series`.
    """
    plan = plan_series(sources, **tolerances)
    volume = load_volume(plan.frames)
    return Series(
        volume=volume,
        affine_lps=plan.affine_lps,
        spacing_mm=plan.spacing_mm,
        slice_positions_mm=plan.slice_positions_mm,
        warnings=plan.warnings,
        modality=plan.modality,
        photometric_interpretation=str(plan.frames[0].header.get("PhotometricInterpretation", "")).strip(),
    )


def _check_size(instances: list[Instance]) -> None:
    """The series' declared pixels against :mod:`preprocessing.limits`, before any frame of it
    is placed or decoded."""
    limits = current_limits()
    voxels = sum(i.pixels.rows * i.pixels.columns * i.pixels.number_of_frames for i in instances)
    if voxels > limits.max_voxels_per_request:
        raise InputTooLarge(
            f"the series declares {voxels} pixels in all; at most {limits.max_voxels_per_request} are accepted"
        )


def _drop_repeated_instances(instances: list[Instance]) -> tuple[list[Instance], list[SeriesWarning]]:
    seen: set[str] = set()
    kept: list[Instance] = []
    for instance in instances:
        uid = str(header_value(instance.header, "SOPInstanceUID", ""))
        if uid and uid in seen:
            continue
        seen.add(uid)
        kept.append(instance)
    warnings = []
    if len(kept) < len(instances):
        warnings.append(
            SeriesWarning(
                "duplicate_instance",
                f"{len(instances) - len(kept)} instances were sent more than once (same (0008,0018) "
                "SOP Instance UID) and were used once",
            )
        )
    return kept, warnings


def _check_same_image_type(frames: list[Frame]) -> None:
    def counted(name: str, values: list[object]) -> None:
        counts = Counter(values)
        if len(counts) > 1:
            listed = ", ".join(f"{value} ×{count}" for value, count in counts.most_common(4))
            raise InconsistentSeries(f"the frames differ in {name} ({listed}); they cannot form one volume")

    counted("size (rows×columns)", [f"{f.instance.pixels.rows}×{f.instance.pixels.columns}" for f in frames])
    counted("(0028,0002) Samples per Pixel", [f.instance.pixels.samples_per_pixel for f in frames])
    counted("(0008,0060) Modality", [str(header_value(f.instance.header, "Modality", "")) for f in frames])
    counted(
        "(0028,0004) Photometric Interpretation",
        ["color" if is_color(f.header) else f.instance.pixels.photometric_interpretation for f in frames],
    )
    counted("(0028,0030) Pixel Spacing", [_rounded(pixel_spacing_mm(f.header)) for f in frames])


def _rounded(spacing: tuple[float, float] | None) -> str:
    return "none" if spacing is None else f"{spacing[0]:.4g}×{spacing[1]:.4g} mm"


def _check_parallel(frames: list[Frame], tolerance: float) -> None:
    reference: list[PlaneGeometry] = []
    matches: list[int] = []
    for frame in frames:
        plane = frame.plane
        assert plane is not None
        match = next((i for i, ref in enumerate(reference) if ref.same_orientation(plane, tolerance)), None)
        if match is None:
            reference.append(plane)
            match = len(reference) - 1
        matches.append(match)
    if len(reference) > 1:
        counts = ", ".join(f"{_plane_name(reference[i])} ×{n}" for i, n in Counter(matches).most_common(4))
        raise InconsistentSeries(
            f"the frames lie in {len(reference)} differently oriented planes ({counts}); a volume needs "
            "parallel slices — send one stack (a localizer or a radial series cannot be stacked)"
        )


def _plane_name(plane: PlaneGeometry) -> str:
    normal_axis = int(np.argmax(np.abs(plane.normal)))
    return ("sagittal", "coronal", "axial")[normal_axis] + f" (normal {_fmt(plane.normal)})"


def _sorted_plan(
    frames: list[Frame],
    spacing: tuple[float, float],
    warnings: list[SeriesWarning],
    spacing_tolerance: float,
    gap_factor: float,
) -> SeriesPlan:
    reference = frames[0].plane
    assert reference is not None
    normal = reference.normal
    distances = np.array([float(np.dot(normal, f.plane.position_mm)) for f in frames])  # type: ignore[union-attr]
    order = np.argsort(distances, kind="stable")
    frames = [frames[i] for i in order]
    distances = distances[order]
    positions = np.array([f.plane.position_mm for f in frames])  # type: ignore[union-attr]
    if len(frames) == 1:
        thickness = _slice_thickness_mm(frames[0])
        affine = volume_affine(positions[0], normal * thickness, reference, spacing)
        return SeriesPlan(tuple(frames), distances, affine, (thickness, *spacing), tuple(warnings))
    steps = np.diff(distances)
    median = float(np.median(steps))
    same = steps <= max(1e-3, 1e-2 * median)
    if same.any():
        first = int(np.argmax(same))
        raise InconsistentSeries(
            f"{int(same.sum()) + 1} frames share a slice position (e.g. slices {first + 1} and {first + 2} "
            f"at {distances[first]:.2f} mm along the normal): several echoes, phases or stacks in one "
            "series; send one of them"
        )
    warnings.extend(_spacing_warnings(steps, median, distances, spacing_tolerance, gap_factor))
    step_vector = (positions[-1] - positions[0]) / (len(frames) - 1)
    in_plane = step_vector - np.dot(step_vector, normal) * normal
    if np.linalg.norm(in_plane) > _TILT_TOLERANCE * np.linalg.norm(step_vector):
        tilt = float(np.degrees(np.arctan2(np.linalg.norm(in_plane), abs(np.dot(step_vector, normal)))))
        warnings.append(
            SeriesWarning("gantry_tilt", f"slices are sheared by {tilt:.2f}° (gantry tilt); the affine carries the shear")
        )
    slice_step = step_vector * (median / float(np.dot(step_vector, normal)))
    affine = volume_affine(positions[0], slice_step, reference, spacing)
    return SeriesPlan(tuple(frames), distances, affine, (median, *spacing), tuple(warnings))


def _spacing_warnings(
    steps: np.ndarray, median: float, distances: np.ndarray, tolerance: float, gap_factor: float
) -> list[SeriesWarning]:
    warnings = []
    gaps = np.flatnonzero(steps > gap_factor * median)
    if gaps.size:
        where = ", ".join(f"after slice {i + 1} ({steps[i]:.2f} mm)" for i in gaps[:5])
        warnings.append(
            SeriesWarning("gap", f"{gaps.size} gap(s) in a series of {median:.3g} mm slices: {where}; slices are missing")
        )
    uneven = np.abs(steps - median) > tolerance * median + 1e-4
    uneven[gaps] = False
    if uneven.any():
        warnings.append(
            SeriesWarning(
                "non_uniform_spacing",
                f"slice steps range from {steps.min():.3f} to {steps.max():.3f} mm (median {median:.3f} mm, "
                f"tolerance {tolerance:.0%})",
            )
        )
    return warnings


def _slice_thickness_mm(frame: Frame) -> float:
    """Spacing for a lone slice: (0018,0088) *Spacing Between Slices*, else (0018,0050)
    *Slice Thickness*, else 1 mm."""
    for keyword in ("SpacingBetweenSlices", "SliceThickness"):
        value = frame.header.get(keyword)
        try:
            if value not in (None, "") and float(value) > 0:
                return float(value)
        except (TypeError, ValueError):
            continue
    return 1.0


def _fmt(vector: np.ndarray) -> str:
    return "(" + ", ".join(f"{v:+.2f}" for v in vector) + ")"
