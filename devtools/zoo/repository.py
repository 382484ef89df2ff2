"""Build the demo model repository from the committed zoo weights (what ``make run`` and
``make test`` do): every zoo model exported with its INT8 variant, nothing trained.

Calibration and validation DICOM are written to ``build/zoo-data/<model>/`` when missing.
A model is exported again when its directory is missing or its report's source digest (spec,
weights, export format) differs from what the current spec would produce.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from export.pipeline import ExportOptions, export_model, source_digest
from export.spec import ExportSpec, load_spec
from .datasets import MANIFEST, WRITERS

__all__ = ["DATA_DIR", "DERIVED", "SPECS_DIR", "ZOO", "ensure_demo_repository", "ensure_zoo_data", "zoo_spec"]

SPECS_DIR = Path(__file__).parent / "specs"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = PROJECT_ROOT / "build" / "zoo-data"


@dataclass(frozen=True)
class ZooData:
    """How many cases each folder holds and the seed it is written from."""

    validation_count: int
    calibration_count: int = 64
    validation_seed: int = 2026
    calibration_seed: int = 7


#: zoo model name → its data folders (the order is the export order).
ZOO: dict[str, ZooData] = {
    "ct_nodule_classifier": ZooData(validation_count=128),
    "ct_nodule_segmenter": ZooData(validation_count=96),
    "ct_nodule_segmenter_3d": ZooData(validation_count=24),
    "ct_pet_nodule_classifier": ZooData(validation_count=128),
}

#: Exports derived from a zoo model's weights and data (no training of their own) → that model.
DERIVED: dict[str, str] = {"ct_nodule_classifier_cam": "ct_nodule_classifier"}


def ensure_zoo_data(name: str, log: Callable[[str], None] = print, data_dir: Path = DATA_DIR) -> Path:
    """Write ``name``'s validation and calibration folders where missing; returns the
    model's data folder."""
    data, writer = ZOO[name], WRITERS[name]
    for kind, count, seed in (
        ("validation", data.validation_count, data.validation_seed),
        ("calibration", data.calibration_count, data.calibration_seed),
    ):
        folder = data_dir / name / kind
        if not (folder / MANIFEST).exists():
            log(f"writing {count} {kind} cases for {name} to {folder}")
            writer(folder, count, seed)
    return data_dir / name


def zoo_spec(name: str) -> ExportSpec:
    return load_spec(SPECS_DIR / f"{name}.yaml")


def _exported_digest(model_dir: Path) -> str | None:
    try:
        return json.loads((model_dir / "export_report.json").read_text())["source_digest"]
    except (OSError, ValueError, KeyError):
        return None


def ensure_demo_repository(
    repository: Path, log: Callable[[str], None] = print, force: bool = False, options: ExportOptions = ExportOptions()
) -> list[str]:
    """Export every zoo model that is missing from ``repository`` or stale; returns the
    names exported."""
    exported = []
    for name in [*ZOO, *DERIVED]:
        spec = zoo_spec(name)
        if not force and _exported_digest(Path(repository) / name) == source_digest(spec, options.precisions):
            continue
        ensure_zoo_data(DERIVED.get(name, name), log)
        export_model(spec, Path(repository), log=log, options=options)
        exported.append(name)
    return exported
