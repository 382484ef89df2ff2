"""Workload (c): deepbet, the third-party two-stage cascade of the bring-your-own-model issue
(:mod:`devtools.thirdparty.deepbet_export`), on the real enhanced multi-frame MR
(:mod:`devtools.thirdparty.brain_mr`: the MNI T1 in a Philips header, 176 frames of 256²).

Both stages are exported with ``medserve export`` from deepbet's specs into the real-size
repository (``build/realsize/model_repository``: ``deepbet`` and ``deepbet_localiser``); the
project (specs, the MR, deepbet's own mask of it) is written once under
``build/realsize/data/deepbet``. The export (about 2 minutes: both TorchScript archives traced
to ONNX and verified as a cascade) runs again only when the spec's source digest changed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from benchmarks.serving.load import Payload
from benchmarks.serving.repositories import export_digest
from devtools.zoo.realsize import REALSIZE_DIR

from .inputs import Workload

CASCADE = "deepbet"
LOCALISER = "deepbet_localiser"
MODELS = (CASCADE, LOCALISER)
PROJECT_DIR = REALSIZE_DIR / "data" / CASCADE


def brain_mr_path(project: Path = PROJECT_DIR) -> Path:
    """The enhanced MR the project's validation case is (one multi-frame Part 10 file)."""
    return project / "cases" / "brain" / "brain.dcm"


def ensure_deepbet(repository: Path = REALSIZE_DIR / "model_repository", project: Path = PROJECT_DIR,
                   log: Callable[[str], None] = print) -> Path:
    """Write the project when missing and export both stages into ``repository`` when missing or
    stale (the served model's export digest differs from its spec's); returns ``repository``."""
    from devtools.thirdparty.deepbet_export import write_deepbet_project
    from export.pipeline import export_model, source_digest
    from export.spec import load_spec

    spec_path = project / f"{CASCADE}.yaml"
    if not spec_path.exists() or not brain_mr_path(project).exists():
        log(f"writing the deepbet project (specs, enhanced MR, deepbet's own mask) to {project}")
        write_deepbet_project(project)
    spec = load_spec(spec_path)
    if export_digest(repository / CASCADE) != source_digest(spec) or not (repository / LOCALISER / "config.pbtxt").exists():
        log(f"exporting the deepbet cascade ({', '.join(MODELS)}) to {repository}")
        export_model(spec, repository, log=log)
    return repository


def deepbet_workload(project: Path = PROJECT_DIR) -> Workload:
    """One request: the enhanced MR as application/dicom, the same bytes for the script."""
    body = brain_mr_path(project).read_bytes()
    name = f"enhanced MR, 176×256×256 ({len(body) / 1e6:.0f} MB, one multi-frame file)"
    return Workload(CASCADE, [Payload(name, body, "application/dicom")], [[body]], f"{name} as application/dicom")
