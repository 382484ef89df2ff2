"""Reference statistics of what a model saw at export, stored in its Triton config for drift
monitoring: the gateway compares live inputs and predictions against them.

Computed on the calibration cases (the inputs the deployment is expected to see) and the FP32
model's predictions on them (on the validation cases when an export has no calibration
data). Every numeric feature is a histogram over **fixed bin edges** stored with the counts —
``{"edges": [n + 1], "counts": [n], "mean", "std", "min", "max"}``, the form the gateway's
``HistogramReference.from_dict`` reads — so that a monitor bins live values identically (values
outside the edges count in the end bins). Categorical features are ``{category: fraction}``.

Shape of the JSON document (``parameters["drift_reference"]``); H is a histogram as above::

    {"version": 1, "source": "calibration", "cases": 64,
     "inputs": {"<input name>": {
         "modality": "CT",
         "intensity": H (20 bins over the prepared values' range, plus "p01", "p50", "p99"),
         "geometry": {"rows": H, "columns": H, "slices": H, "pixel_spacing_mm": H,
                      "slice_thickness_mm": H, "prepared_spacing_mm": H},
         "modality_mix": {"CT": 1.0}, "manufacturer_mix": {"<Manufacturer>": fraction}}},
     "predictions": {"output": "<name>", "meaning": "class_probabilities" | "class_logits",
                     "classes": {"<label>": H (10 bins over [0, 1] of the class probability)},
                     "top_label_mix": {"<label>": fraction}}}

For segmentation, ``predictions`` is ``{"output", "meaning", "unit": "mm2" (2D) | "ml" (3D),
"classes": {"<foreground label>": H of each case's mask area/volume, plus "empty_fraction"}}``.
Geometry entries whose header attribute no case had are left out.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np
from pydicom.dataset import Dataset

from contract import OutputMeaning
from preprocessing import PreprocessingSpec

from preprocessing.frames import frame_headers, is_enhanced

from .metrics import segmentation_labels
from .spec import ExportSpec, OutputSpec

if TYPE_CHECKING:  # annotations only: export/data.py may import this module's header helpers
    from .data import PreparedSet, SourceInfo

__all__ = ["GEOMETRY_EDGES", "INTENSITY_BINS", "PROBABILITY_BINS", "drift_reference", "header_geometry", "volume_slices"]

VERSION = 1
INTENSITY_BINS = 20
PROBABILITY_BINS = 10
_OPEN = 1e6  # upper edge standing for "anything larger"

#: Fixed edges of the header features, spanning what scanners write: a model seeing other
#: sizes or spacings than at export shows up as mass moving between these bins.
GEOMETRY_EDGES: dict[str, list[float]] = {
    "rows": [0, 96, 160, 224, 288, 384, 448, 576, 1024, 2048, _OPEN],
    "columns": [0, 96, 160, 224, 288, 384, 448, 576, 1024, 2048, _OPEN],
    "slices": [0, 1.5, 16.5, 48.5, 96.5, 192.5, 384.5, 768.5, _OPEN],
    "pixel_spacing_mm": [0, 0.3, 0.5, 0.7, 0.9, 1.1, 1.5, 2.0, 3.0, 5.0, _OPEN],
    "slice_thickness_mm": [0, 0.75, 1.25, 1.75, 2.25, 3.0, 4.0, 5.5, 8.0, _OPEN],
    "prepared_spacing_mm": [0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 6.0, 10.0, _OPEN],
}
#: Mask sizes: the first bin holds empty masks, then roughly doubling steps.
MASK_AREA_EDGES_MM2 = [0, 1e-6, 10, 25, 50, 100, 200, 400, 800, 1600, 3200, _OPEN]
#: Mask volumes (mL): the empty bin, then doubling steps from 0.05 mL (a 4 mm lesion) to
#: 6553.6 mL, so that whole organs (a brain ~1.2–1.5 L, a liver ~1.5 L, both lungs ~5–6 L)
#: fall in bins of their own instead of all in one "over 64 mL" bin: 20 bins, log-spaced.
MASK_VOLUME_EDGES_ML = [0, 1e-6, *(round(0.05 * 2**k, 6) for k in range(18)), _OPEN]


def header_geometry(header: Dataset) -> tuple[tuple[float, float] | None, float | None]:
    """(0028,0030) *Pixel Spacing* (row, column) and (0018,0050) *Slice Thickness*, in mm, of
    an instance as the drift reference records them: from the top level of a single-frame
    header, from the functional groups (Pixel Measures, shared or of the first frame) of an
    enhanced multi-frame one, where that IOD keeps them; None where absent or empty. The
    gateway reads the same attributes the same way (``gateway.drift.geometry_header``)."""
    if is_enhanced(header):
        header = frame_headers(header, 1)[0]
    spacing = header.get("PixelSpacing")
    thickness = header.get("SliceThickness")
    return (
        (float(spacing[0]), float(spacing[1])) if spacing else None,
        float(thickness) if thickness not in (None, "") else None,
    )


def volume_slices(headers: Iterable[Dataset]) -> int:
    """Slices of one volume: its frames, summed over its instances ((0028,0008) *Number of
    Frames*, 1 when absent). The unit the gateway counts (one observation per volume, its
    frames as ``slices``): a 176-frame enhanced MR is 176 slices, as its 176-file classic
    equivalent is."""
    return sum(int(h.get("NumberOfFrames") or 1) for h in headers)


def _round(value: float) -> float:
    return round(float(value), 6)


def _histogram(values: np.ndarray, edges: list[float] | np.ndarray) -> dict[str, Any]:
    """Counts over ``edges`` (out-of-range values in the end bins) with summary moments."""
    edges = np.asarray(edges, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64).ravel()
    index = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)
    counts = np.bincount(index, minlength=len(edges) - 1)
    return {
        "edges": [_round(e) for e in edges],
        "counts": [int(c) for c in counts],
        "mean": _round(values.mean()),
        "std": _round(values.std()),
        "min": _round(values.min()),
        "max": _round(values.max()),
    }


def _intensity_range(spec: PreprocessingSpec, values: np.ndarray) -> tuple[float, float]:
    """Fixed edges from the spec where it bounds the values: a window or clipped percentile
    scaling gives [0, 1], a z-score [-4, 4], a two-sided clip range its bounds; otherwise
    the calibration values' own range."""
    normalize = spec.normalize
    if spec.window is not None or (normalize is not None and normalize.method == "percentile" and normalize.clip):
        return 0.0, 1.0
    if normalize is not None and normalize.method == "zscore":
        return -4.0, 4.0
    if spec.clip_range is not None and None not in spec.clip_range:
        return float(spec.clip_range[0]), float(spec.clip_range[1])  # type: ignore[arg-type]
    low, high = float(values.min()), float(values.max())
    return (low, high) if high > low else (low, low + 1.0)


def _mix(names: list[str]) -> dict[str, float]:
    counts = Counter(names)
    return {name: _round(count / len(names)) for name, count in sorted(counts.items())}


def _geometry(sources: list[SourceInfo]) -> dict[str, Any]:
    features: dict[str, list[float]] = {
        "rows": [s.rows for s in sources],
        "columns": [s.columns for s in sources],
        "slices": [s.slices for s in sources],
        "pixel_spacing_mm": [s.pixel_spacing_mm[0] for s in sources if s.pixel_spacing_mm],
        "slice_thickness_mm": [s.slice_thickness_mm for s in sources if s.slice_thickness_mm is not None],
        "prepared_spacing_mm": [float(np.mean(s.prepared_spacing_mm)) for s in sources if s.prepared_spacing_mm],
    }
    return {name: _histogram(np.array(values), GEOMETRY_EDGES[name]) for name, values in features.items() if values}


def _input_reference(values: np.ndarray, sources: list[SourceInfo], spec: PreprocessingSpec) -> dict[str, Any]:
    flat = values.ravel()
    low, high = _intensity_range(spec, flat)
    p01, p50, p99 = np.percentile(flat, [1, 50, 99])
    modalities = [s.modality for s in sources]
    return {
        "modality": Counter(modalities).most_common(1)[0][0],
        "intensity": _histogram(flat, np.linspace(low, high, INTENSITY_BINS + 1)) | {"p01": _round(p01), "p50": _round(p50), "p99": _round(p99)},
        "geometry": _geometry(sources),
        "modality_mix": _mix(modalities),
        "manufacturer_mix": _mix([s.manufacturer for s in sources]),
    }


def _classification_reference(output: OutputSpec, values: np.ndarray) -> dict[str, Any]:
    scores = values.astype(np.float64)
    if output.meaning == OutputMeaning.CLASS_LOGITS:
        scores = np.exp(scores - scores.max(axis=1, keepdims=True))
        scores /= scores.sum(axis=1, keepdims=True)
    labels = output.labels or [str(i) for i in range(scores.shape[1])]
    edges = np.linspace(0.0, 1.0, PROBABILITY_BINS + 1)
    return {
        "output": output.name,
        "meaning": output.meaning,
        "classes": {label: _histogram(scores[:, i], edges) for i, label in enumerate(labels)},
        "top_label_mix": _mix([labels[i] for i in scores.argmax(axis=1)]),
    }


def _segmentation_reference(output: OutputSpec, values: np.ndarray, voxel_sizes: np.ndarray, volumetric: bool) -> dict[str, Any]:
    label_maps = segmentation_labels(output, values).reshape(len(values), -1)
    unit_scale = 1e-3 if volumetric else 1.0  # mm³ → ml for volumes; areas stay in mm²
    edges = MASK_VOLUME_EDGES_ML if volumetric else MASK_AREA_EDGES_MM2
    classes = {}
    for value, label in enumerate(output.labels[1:], start=1):
        sizes = (label_maps == value).sum(axis=1) * voxel_sizes * unit_scale
        classes[label] = _histogram(sizes, edges) | {"empty_fraction": _round((sizes == 0).mean())}
    return {"output": output.name, "meaning": output.meaning, "unit": "ml" if volumetric else "mm2", "classes": classes}


def _voxel_sizes(sources: list[SourceInfo], input_spatial: list[int], output_spatial: tuple[int, ...]) -> np.ndarray:
    """Physical size of one output voxel per case (mm² or mm³); 0 where the header had no
    spacing, so such cases count as empty rather than inventing a size."""
    scale = float(np.prod(input_spatial)) / float(np.prod(output_spatial))
    return np.array([float(np.prod(s.prepared_spacing_mm)) * scale if s.prepared_spacing_mm else 0.0 for s in sources])


def drift_reference(spec: ExportSpec, cases: PreparedSet, predictions: list[np.ndarray], source: str) -> dict[str, Any]:
    """The drift reference of ``spec``'s model from prepared ``cases`` and the FP32 model's
    outputs on them; ``source`` says which set they are ("calibration", or "validation"
    for an FP32-only export without calibration data)."""
    inputs = {
        t.name: _input_reference(cases.inputs[t.name], cases.sources[t.name], spec.input_preprocessing(t.name))
        for t in spec.inputs
    }
    output, values = spec.metric_output, predictions[0]
    if spec.is_segmentation:
        first = spec.inputs[0]
        spatial = values.shape[1:] if output.meaning == OutputMeaning.SEGMENTATION_LABELS else values.shape[2:]
        sizes = _voxel_sizes(cases.sources[first.name], first.shape[2:], spatial)
        prediction = _segmentation_reference(output, values, sizes, volumetric=len(first.shape) == 5)
    else:
        prediction = _classification_reference(output, values)
    return {"version": VERSION, "source": source, "cases": len(cases), "inputs": inputs, "predictions": prediction}
