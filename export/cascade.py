"""Export of a cascade's last stage: its inputs prepared through the localiser, and the whole
cascade verified against the PyTorch pipeline.

A cascade (:mod:`contract.cascade`) is exported by one ``medserve export`` of its last stage's
spec: the localiser is exported first by its own spec (``cascade.localiser``); the stage's
validation and calibration cases are then prepared as the gateway prepares them — the series
loaded once, the localiser (PyTorch) run on it, its region cropped and prepared by the stage's
spec — with :mod:`postprocessing.cascade`, the code the gateway runs. Finally every validation
case runs through the whole cascade twice, with both PyTorch models and with both exported
ONNX models, and the two label maps on the source grid are compared (label disagreement and
per-class Dice, gated like a single model's segmentation output).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from postprocessing import PostprocessingSpec
from postprocessing.cascade import labels_on_source, localiser_input, localiser_region, stage_input, stage_labels
from postprocessing.region import RegionSpec
from preprocessing import PreparedInput, plan_series
from preprocessing.pipeline import SeriesVolume, load_series_volume

from .errors import ExportDataError, ExportFailed
from .spec import ExportSpec

__all__ = ["CascadeCase", "CascadeStages", "cascade_agreement", "onnx_runner", "torch_runner"]

#: One item's input [C, D, H, W] → its class scores [K, D, H, W].
Runner = Callable[[np.ndarray], np.ndarray]


def torch_runner(model) -> Runner:
    """A PyTorch model (eval mode) as a :data:`Runner`."""
    import torch

    def run(array: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            result = model(torch.from_numpy(np.ascontiguousarray(array[None])))
        result = result[0] if isinstance(result, (tuple, list)) else result
        return result[0].detach().cpu().numpy().astype(np.float32, copy=False)

    return run


def onnx_runner(path: Path, input_name: str, output_name: str) -> Runner:
    """An ONNX model under onnxruntime (CPU) as a :data:`Runner`."""
    from .verify import ort_session

    session = ort_session(path)

    def run(array: np.ndarray) -> np.ndarray:
        return session.run([output_name], {input_name: np.ascontiguousarray(array[None])})[0][0].astype(np.float32, copy=False)

    return run


@dataclass(frozen=True)
class CascadeCase:
    """One series through the cascade: the stage's prepared input, the region (index slices
    of the loaded volume), and the labels on the source grid."""

    stage_input: PreparedInput
    box: tuple[slice, ...]
    labels: np.ndarray  # uint8 [D, H, W] on the source grid (slices sorted along the normal)


def _postprocessing(spec: ExportSpec) -> PostprocessingSpec | None:
    document = spec.metric_output.postprocessing
    return PostprocessingSpec.from_dict(document) if document else None


@dataclass(frozen=True)
class CascadeStages:
    """The two stages' specs and the region rule between them."""

    localiser: ExportSpec
    stage: ExportSpec

    @property
    def region(self) -> RegionSpec:
        assert self.stage.cascade is not None
        return self.stage.cascade.region_spec

    def load(self, series: Path) -> SeriesVolume:
        files = sorted(series.glob("*.dcm")) if series.is_dir() else []
        if not files:
            raise ExportDataError(f"{series}: a cascade case is a folder of *.dcm files (one series)")
        return load_series_volume(plan_series(files), self.localiser.preprocessing_spec)

    def region_of(self, base: SeriesVolume, run_localiser: Runner, series: Path):
        first = localiser_input(base, self.localiser.preprocessing_spec)
        found = localiser_region(run_localiser(first.array), first, _postprocessing(self.localiser), self.region, base)
        if found.box is None:
            raise ExportDataError(f"{series}: the localiser {self.localiser.name!r} finds no region of class {self.region.label}")
        return found

    def prepare(self, series: Path, run_localiser: Runner) -> PreparedInput:
        """The stage's input for one series, as the gateway prepares it."""
        base = self.load(series)
        return stage_input(base, self.stage.preprocessing_spec, self.region_of(base, run_localiser, series))

    def run(self, series: Path, run_localiser: Runner, run_stage: Runner) -> CascadeCase:
        """The whole cascade on one series, as the gateway runs it."""
        base = self.load(series)
        found = self.region_of(base, run_localiser, series)
        prepared = stage_input(base, self.stage.preprocessing_spec, found)
        post = _postprocessing(self.stage)
        on_base = stage_labels(run_stage(prepared.array), prepared, post, found.box, base.values.shape[:3])
        return CascadeCase(prepared, found.box, labels_on_source(on_base, base, post))


@dataclass(frozen=True)
class CascadeAgreement:
    """The exported cascade against PyTorch's over the validation series."""

    cases: int
    disagreement: float  # largest fraction of source voxels whose label differs, over the cases
    dice: dict[str, float]  # per foreground class, the lowest over the cases (1 where both are empty)
    same_regions: int  # cases whose localiser regions are identical

    def to_dict(self) -> dict:
        return {"cases": self.cases, "label_disagreement": self.disagreement, "dice": self.dice, "same_regions": self.same_regions}


def cascade_agreement(stages: CascadeStages, series: list[Path], reference: tuple[Runner, Runner], exported: tuple[Runner, Runner]) -> CascadeAgreement:
    """Run every series through both cascades and compare their source-grid labels."""
    labels = stages.stage.metric_output.labels
    worst = 0.0
    dice = {label: 1.0 for label in labels[1:]}
    same = 0
    for path in series:
        expected, got = stages.run(path, *reference), stages.run(path, *exported)
        worst = max(worst, float((expected.labels != got.labels).mean()))
        same += expected.box == got.box
        for value, label in enumerate(labels[1:], start=1):
            a, b = expected.labels == value, got.labels == value
            total = int(a.sum()) + int(b.sum())
            dice[label] = min(dice[label], 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total)
    return CascadeAgreement(len(series), worst, dice, same)


def check_agreement(agreement: CascadeAgreement, max_disagreement: float, min_dice: float) -> str:
    """The report's sentence; :class:`ExportFailed` when the exported cascade is off."""
    dice = ", ".join(f"{label} {value:.5f}" for label, value in agreement.dice.items())
    sentence = (f"{agreement.cases} series: label disagreement {agreement.disagreement:.2e} (max {max_disagreement:g}), "
                f"Dice {dice} (min {min_dice:g}), identical regions in {agreement.same_regions}/{agreement.cases}")
    if agreement.disagreement > max_disagreement or min(agreement.dice.values(), default=1.0) < min_dice:
        raise ExportFailed(f"the exported cascade differs from the PyTorch pipeline: {sentence}")
    return sentence
