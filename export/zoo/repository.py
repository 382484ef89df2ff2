"""Build the demo model repository from the committed zoo weights (what `make run` does)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..pipeline import export_model
from ..spec import load_spec
from .datasets import write_classifier_set

SPECS_DIR = Path(__file__).parent / "specs"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = PROJECT_ROOT / "build" / "zoo-data"

#: zoo model name → (writer of its validation folder, count, seed)
VALIDATION_SETS = {"ct_nodule_classifier": (write_classifier_set, 128, 2026)}


def ensure_demo_repository(repository: Path, log: Callable[[str], None] = print, force: bool = False) -> list[str]:
    """Export every zoo model whose directory is missing from ``repository``; returns the
    names exported. Validation folders are generated first when missing."""
    exported = []
    for name, (writer, count, seed) in VALIDATION_SETS.items():
        if (Path(repository) / name / "config.pbtxt").exists() and not force:
            continue
        validation_dir = DATA_DIR / name / "validation"
        if not (validation_dir / "labels.csv").exists():
            log(f"writing {count} validation DICOM files for {name} to {validation_dir}")
            writer(validation_dir, count=count, seed=seed)
        export_model(load_spec(SPECS_DIR / f"{name}.yaml"), Path(repository), log=log)
        exported.append(name)
    return exported
