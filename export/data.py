"""Calibration and validation DICOM → model inputs prepared exactly as the gateway prepares them.

A *case* is one set of model inputs: for each input a DICOM file (2D inputs) or a series folder
(volumetric inputs), run through that input's preprocessing spec with the very functions the
gateway calls (:func:`preprocessing.preprocess_instance` / :func:`preprocessing.preprocess_series`).

The manifest is a CSV with one column per model input (paths relative to the data folder) and,
for validation, ``label`` (class index) or ``mask``: a ``.npy`` label map in the output's
geometry, or for a volumetric input a NIfTI or DICOM SEG on the source grid, resampled onto the
model's grid (:mod:`export.masks`). Header facts of every input (modality, manufacturer, size, spacing) are kept for the
drift reference.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from tqdm import tqdm

from preprocessing import PreparedInput, PreprocessingError, PreprocessingSpec, preprocess_instance, preprocess_series, read_dataset
from preprocessing.quality import quality_features

from .drift_reference import header_geometry, volume_slices
from .errors import ExportDataError
from .masks import MaskGrid, read_mask
from .spec import ExportSpec

__all__ = [
    "CALIBRATION_ADVICE",
    "PreparedSet",
    "SourceInfo",
    "calibration_shortfall",
    "load_calibration_set",
    "load_validation_set",
    "prepare_input",
]


@dataclass(frozen=True)
class SourceInfo:
    """What the DICOM header says about one prepared input (for drift monitoring).

    ``pixel_spacing_mm`` is (0028,0030) *Pixel Spacing* (row, column); ``slice_thickness_mm``
    is (0018,0050) *Slice Thickness* (both from the functional groups of an enhanced multi-frame
    instance); ``slices`` counts the frames of a series, all frames of a multi-frame instance
    included (1 for 2D).
    ``prepared_spacing_mm`` is the spacing of the prepared array's spatial axes ((row, column)
    or (slice, row, column)), None when the header gives no spacing.
    """

    modality: str
    manufacturer: str
    rows: int
    columns: int
    slices: int
    pixel_spacing_mm: tuple[float, float] | None
    slice_thickness_mm: float | None
    prepared_spacing_mm: tuple[float, ...] | None
    quality: dict[str, float] = field(default_factory=dict)  # preprocessing.quality.quality_features, for the input quality gate
    mask_grid: MaskGrid | None = None  # where a source-grid validation mask lands (volumetric inputs)


@dataclass(frozen=True)
class PreparedSet:
    """Prepared cases: ``inputs[name]`` is [N, ...] per model input, in the spec's input order;
    ``labels`` [N] (classification) or ``masks`` [N, ...] uint8 (segmentation) when known."""

    cases: list[str]
    inputs: dict[str, np.ndarray]
    sources: dict[str, list[SourceInfo]]
    labels: np.ndarray | None = None
    masks: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.cases)

    def feeds(self, start: int = 0, stop: int | None = None) -> dict[str, np.ndarray]:
        """Inputs of cases ``start:stop`` keyed by input name, ready for onnxruntime."""
        return {name: array[start:stop] for name, array in self.inputs.items()}


def source_info(
    header: Dataset, slices: int, prepared_spacing_mm: tuple[float, ...] | None, quality: dict[str, float] | None = None
) -> SourceInfo:
    spacing, thickness = header_geometry(header)
    return SourceInfo(
        modality=str(header.get("Modality", "")).upper() or "unknown",
        manufacturer=str(header.get("Manufacturer", "")).strip() or "unknown",
        rows=int(header.get("Rows", 0)),
        columns=int(header.get("Columns", 0)),
        slices=slices,
        pixel_spacing_mm=spacing,
        slice_thickness_mm=thickness,
        prepared_spacing_mm=prepared_spacing_mm,
        quality=quality or {},
    )


def _prepared_spacing(header: Dataset, spec: PreprocessingSpec, prepared_shape: tuple[int, ...]) -> tuple[float, float] | None:
    """In-plane spacing (mm) of a prepared 2D instance: resampling to ``spacing_mm`` sets it,
    a resize to ``output_size`` stretches the field of view, a crop or pad keeps the spacing."""
    spacing = header.get("PixelSpacing")
    if not spacing:
        return None
    source = (float(spacing[0]), float(spacing[1]))
    rows, columns = int(header.Rows), int(header.Columns)
    if spec.spacing_mm is not None:
        target = (float(spec.spacing_mm[-2]), float(spec.spacing_mm[-1]))
        rows, columns = round(rows * source[0] / target[0]), round(columns * source[1] / target[1])
        source = target
    if spec.size_mode == "crop_pad":
        return source
    out_rows, out_columns = prepared_shape[-2:]
    return (source[0] * rows / out_rows, source[1] * columns / out_columns)


#: Prepares one series folder in place of :func:`preprocessing.preprocess_series` (a cascade's
#: later stage: through its localiser, :class:`export.cascade.CascadeStages`).
SeriesPreparer = Callable[[Path], PreparedInput]


def _mask_grid(prepared: PreparedInput, header: Dataset) -> MaskGrid | None:
    if prepared.geometry is None or prepared.source_geometry is None:
        return None
    return MaskGrid(prepared.geometry, prepared.source_geometry, str(header.get("SeriesInstanceUID", "")))


def prepare_input(path: Path, spec: PreprocessingSpec, series_preparer: SeriesPreparer | None = None) -> tuple[np.ndarray, SourceInfo]:
    """One model input (without batch axis) from a DICOM file or, for a volumetric spec, a
    series folder (prepared by ``series_preparer`` when given); :class:`ExportDataError` names
    the path and the preprocessing error."""
    try:
        if spec.volumetric:
            if spec.layout != "CDHW":
                raise ExportDataError(f"{path}: export takes one array per case; 2.5D slice stacks (stack_slices > 1) are not supported")
            files = sorted(path.glob("*.dcm")) if path.is_dir() else []
            if not files:
                raise ExportDataError(f"{path}: a volumetric input needs a folder of *.dcm files (one series)")
            prepared = series_preparer(path) if series_preparer is not None else preprocess_series(files, spec)
            spacing = prepared.geometry.spacing_mm if prepared.geometry is not None else None
            headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
            info = source_info(headers[0], volume_slices(headers), spacing, quality_features(prepared.applied))
            return prepared.array, replace(info, mask_grid=_mask_grid(prepared, headers[0]))
        if not path.is_file():
            raise ExportDataError(f"{path}: not a DICOM file")
        ds = read_dataset(path.read_bytes())
        prepared = preprocess_instance(ds, spec)
        array = prepared.array
        return array, source_info(ds, 1, _prepared_spacing(ds, spec, array.shape), quality_features(prepared.applied, ds))
    except PreprocessingError as exc:
        raise ExportDataError(f"{path}: {exc}") from exc


def _read_manifest(path: Path, required: list[str]) -> list[dict[str, str]]:
    try:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
    except FileNotFoundError as exc:
        raise ExportDataError(f"manifest not found: {path}") from exc
    columns = set(rows[0]) if rows else set()
    missing = [c for c in required if c not in columns]
    if not rows or missing:
        raise ExportDataError(f"{path}: needs a header and rows with columns {required}; missing: {missing or 'all rows'}")
    return rows


def _discover(dicom_dir: Path, volumetric: bool) -> list[str]:
    """Samples under a folder without manifest: ``*.dcm`` files, or series folders."""
    if volumetric:
        folders = sorted({p.parent for p in dicom_dir.rglob("*.dcm")})
        return [str(f.relative_to(dicom_dir)) for f in folders]
    return [str(p.relative_to(dicom_dir)) for p in sorted(dicom_dir.rglob("*.dcm"))]


def _prepare_cases(
    spec: ExportSpec, dicom_dir: Path, rows: list[dict[str, str]], what: str, progress: bool, series_preparer: SeriesPreparer | None = None
) -> tuple[dict[str, np.ndarray], dict[str, list[SourceInfo]]]:
    arrays: dict[str, list[np.ndarray]] = {t.name: [] for t in spec.inputs}
    sources: dict[str, list[SourceInfo]] = {t.name: [] for t in spec.inputs}
    preps = {t.name: spec.input_preprocessing(t.name) for t in spec.inputs}
    for row in tqdm(rows, desc=f"{spec.name}: {what}", unit="case", disable=not progress, leave=False):
        for tensor in spec.inputs:
            array, info = prepare_input(dicom_dir / row[tensor.name], preps[tensor.name], series_preparer)
            if list(array.shape) != tensor.shape[1:]:
                raise ExportDataError(
                    f"{dicom_dir / row[tensor.name]}: prepared to shape {list(array.shape)}, input {tensor.name!r} takes {tensor.shape[1:]}"
                )
            arrays[tensor.name].append(array)
            sources[tensor.name].append(info)
    return {name: np.stack(parts) for name, parts in arrays.items()}, sources


#: What the report and the log add when fewer calibration cases are found than asked for.
CALIBRATION_ADVICE = (
    "min-max calibration takes each activation's extremes, so the cases must span the intensities and anatomy "
    "served rather than be many: 16-32 varied 3D series (64+ 2D images) usually settle the ranges. The INT8 variant "
    "is still gated on the task metric against FP32; if it is rejected, add varied cases or drop int8"
)


def calibration_shortfall(spec: ExportSpec, prepared: PreparedSet) -> str | None:
    """The warning for a calibration set smaller than ``calibration.samples``, or None."""
    asked = spec.calibration.samples if spec.calibration is not None else 0
    if len(prepared) >= asked:
        return None
    return f"calibration: {asked} cases asked for, {len(prepared)} found; calibrated on {len(prepared)}. Advice: {CALIBRATION_ADVICE}"


def load_calibration_set(spec: ExportSpec, progress: bool = False, series_preparer: SeriesPreparer | None = None) -> PreparedSet:
    """The first ``calibration.samples`` cases of the calibration data, prepared; fewer are
    all taken (:func:`calibration_shortfall` words the warning), none is an error."""
    calibration = spec.calibration
    if calibration is None:
        raise ExportDataError("the spec has no calibration data")
    if not calibration.dicom_dir.is_dir():
        raise ExportDataError(f"calibration folder not found: {calibration.dicom_dir}")
    names = [t.name for t in spec.inputs]
    if calibration.manifest is not None:
        rows = _read_manifest(calibration.manifest, names)
    elif len(names) == 1:
        rows = [{names[0]: p} for p in _discover(calibration.dicom_dir, spec.preprocessing_spec.volumetric)]
    else:
        raise ExportDataError("calibration: a multi-input model needs a manifest naming each input's DICOM per case")
    if not rows:
        raise ExportDataError(f"calibration: {calibration.dicom_dir} holds no cases; INT8 calibration needs at least one")
    rows = rows[: calibration.samples]
    inputs, sources = _prepare_cases(spec, calibration.dicom_dir, rows, "calibration DICOM", progress, series_preparer)
    return PreparedSet(cases=[rows[i][names[0]] for i in range(len(rows))], inputs=inputs, sources=sources)


def load_validation_set(spec: ExportSpec, progress: bool = False, series_preparer: SeriesPreparer | None = None) -> PreparedSet:
    """Every case of the validation manifest, prepared, with its label or mask."""
    validation = spec.validation
    target = "mask" if spec.is_segmentation else "label"
    names = [t.name for t in spec.inputs]
    rows = _read_manifest(validation.manifest, [*names, target])
    inputs, sources = _prepare_cases(spec, validation.dicom_dir, rows, "validation DICOM", progress, series_preparer)
    cases = [row[names[0]] for row in rows]
    if target == "label":
        try:
            labels = np.array([int(row["label"]) for row in rows], dtype=np.int64)
        except ValueError as exc:
            raise ExportDataError(f"{validation.manifest}: label must be a class index: {exc}") from exc
        classes = len(spec.metric_output.labels) or 2
        if labels.min() < 0 or labels.max() >= classes:
            raise ExportDataError(f"{validation.manifest}: labels must lie in 0..{classes - 1}")
        return PreparedSet(cases=cases, inputs=inputs, sources=sources, labels=labels)
    grids = sources[names[0]]
    masks = [read_mask(validation.dicom_dir / row["mask"], grid.mask_grid) for row, grid in zip(rows, grids)]
    if len({m.shape for m in masks}) != 1:
        raise ExportDataError(f"{validation.manifest}: masks differ in shape")
    return PreparedSet(cases=cases, inputs=inputs, sources=sources, masks=np.stack(masks))
