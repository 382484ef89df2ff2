"""Labelled DICOM folders for the zoo's calibration and validation sets.

Written as real CT instances (:mod:`medserve.dicomgen`) so that export measures its task
metric on inputs that went through DICOM encoding and the gateway's preprocessing.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from medserve.dicomgen import ct_dataset
from medserve.phantoms import chest_slice


def write_classifier_set(directory: Path, count: int, seed: int) -> Path:
    """``count`` chest-CT slices (half with nodules) as ``*.dcm`` + ``labels.csv``; returns
    the folder. Deterministic for a seed (UIDs aside)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(count):
        positive = i % 2 == 1
        phantom = chest_slice(rng, size=256, nodules=int(rng.integers(1, 3)) if positive else 0)
        name = f"slice_{i:04d}.dcm"
        ct_dataset(phantom.hu, pixel_spacing_mm=phantom.spacing_mm, instance_number=i + 1).save_as(
            directory / name, enforce_file_format=True
        )
        rows.append({"file": name, "label": int(phantom.has_nodule)})
    with open(directory / "labels.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["file", "label"])
        writer.writeheader()
        writer.writerows(rows)
    return directory
