"""Real-size bench models: networks of clinical size with seeded random weights, exported by
the real ``medserve export`` pipeline into a repository of their own (``build/realsize/
model_repository``), for ``python -m benchmarks.realsize``.

- ``realsize_densenet121_2d``: MONAI ``DenseNet121`` (2D, 1 channel in, 2 classes, softmax
  head), 224×224 CT slices; 7 M parameters, about 2.9 GMAC per image.
- ``realsize_unet_3d``: the zoo's 3D U-Net (:class:`~devtools.zoo.networks.LabelSegmenter`,
  MONAI ``UNet`` with a Resize decoder) at channels 16–256 on 96³ patches of 2 mm voxels;
  4.8 M parameters. A whole CT series is tiled by the gateway's sliding window.

Speed does not depend on what the weights learned, so nothing is trained: the weights are
drawn from ``torch.manual_seed`` (MONAI's own initialisation) and written under ``build/``
(never committed, 19-28 MB each). Validation DICOM (a few phantom cases) are written next to
them, because export verifies ONNX against PyTorch on them; only FP32 is exported (no INT8
calibration). A model is exported again when its report's source digest differs.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from monai.networks.nets import DenseNet121

from export.pipeline import ExportOptions, export_model, source_digest
from export.spec import ExportSpec, load_spec

from .datasets import MANIFEST, write_classifier_set
from .dicom import ct_series
from .networks import LabelSegmenter

__all__ = ["CLASSIFIER_2D", "REALSIZE", "REALSIZE_DIR", "SEGMENTER_3D", "ensure_realsize_repository", "realsize_spec"]

CLASSIFIER_2D = "realsize_densenet121_2d"
SEGMENTER_3D = "realsize_unet_3d"
REALSIZE = (CLASSIFIER_2D, SEGMENTER_3D)
SPECS_DIR = Path(__file__).parent / "specs" / "realsize"
REALSIZE_DIR = Path(__file__).resolve().parents[2] / "build" / "realsize"
WEIGHT_SEED = 17
PATCH = (96, 96, 96)
SPACING_MM = 2.0


class DenseNetClassifier(torch.nn.Module):
    """MONAI DenseNet-121 with a softmax head: the exported graph answers class probabilities."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = DenseNet121(spatial_dims=2, in_channels=1, out_channels=2)

    def logits(self, image: torch.Tensor) -> torch.Tensor:
        return self.backbone(image)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.backbone(image), dim=1)


def build_densenet121_2d() -> DenseNetClassifier:
    return DenseNetClassifier()


def build_unet_3d() -> LabelSegmenter:
    return LabelSegmenter(spatial_dims=3, classes=2, channels=(16, 32, 64, 128, 256))


FACTORIES: dict[str, Callable[[], torch.nn.Module]] = {CLASSIFIER_2D: build_densenet121_2d, SEGMENTER_3D: build_unet_3d}


def _write_segmenter_3d_set(directory: Path, count: int, seed: int) -> Path:
    """Phantom CT series of exactly one patch (96³ voxels of 2 mm) with their nodule masks."""
    from devtools.phantoms import chest_volume

    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(count):
        volume, mask = chest_volume(rng, PATCH[0], size=PATCH[1], nodules=2, field_of_view_mm=PATCH[1] * SPACING_MM)
        name = f"series_{i:04d}"
        (directory / name).mkdir(exist_ok=True)
        for k, ds in enumerate(ct_series(volume, (SPACING_MM,) * 3)):
            ds.save_as(directory / name / f"IM{k:05d}.dcm", enforce_file_format=True)
        np.save(directory / f"{name}_mask.npy", mask.astype(np.uint8))
        rows.append({"volume": name, "mask": f"{name}_mask.npy"})
    with open(directory / MANIFEST, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return directory / MANIFEST


#: model → (validation writer, cases): few, since only ONNX-vs-PyTorch agreement is at stake.
VALIDATION: dict[str, tuple[Callable[[Path, int, int], Path], int]] = {
    CLASSIFIER_2D: (write_classifier_set, 8),
    SEGMENTER_3D: (_write_segmenter_3d_set, 2),
}


def realsize_spec(name: str) -> ExportSpec:
    return load_spec(SPECS_DIR / f"{name}.yaml")


def ensure_inputs(name: str, log: Callable[[str], None] = print, root: Path = REALSIZE_DIR) -> None:
    """The seeded weights and the validation folder of ``name``, written where missing."""
    weights = root / "weights" / f"{name}.pt"
    if not weights.exists():
        log(f"writing seeded random weights of {name} to {weights}")
        weights.parent.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(WEIGHT_SEED)
        torch.save(FACTORIES[name]().state_dict(), weights)
    validation = root / "data" / name / "validation"
    if not (validation / MANIFEST).exists():
        writer, count = VALIDATION[name]
        log(f"writing {count} validation cases for {name} to {validation}")
        writer(validation, count, 2026)


def _exported_digest(model_dir: Path) -> str | None:
    try:
        return json.loads((model_dir / "export_report.json").read_text())["source_digest"]
    except (OSError, ValueError, KeyError):
        return None


def ensure_realsize_repository(
    repository: Path = REALSIZE_DIR / "model_repository", names: tuple[str, ...] = REALSIZE, log: Callable[[str], None] = print
) -> Path:
    """Export each of ``names`` into ``repository`` when missing or stale; returns the repository."""
    for name in names:
        ensure_inputs(name, log)
        spec = realsize_spec(name)
        if _exported_digest(repository / name) == source_digest(spec):
            continue
        log(f"exporting {name} to {repository}")
        export_model(spec, repository, log=log, options=ExportOptions())
    return repository
