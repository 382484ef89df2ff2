"""Labelled DICOM folders → preprocessed model inputs, for verification and task metrics."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from preprocessing import PreprocessingSpec, preprocess_instance, read_dataset


@dataclass(frozen=True)
class PreparedSet:
    """Model inputs [N, ...] prepared exactly as the gateway prepares them, with labels."""

    inputs: np.ndarray
    labels: np.ndarray | None
    files: list[str]


def load_prepared_set(dicom_dir: Path, spec: PreprocessingSpec, labels_csv: Path | None = None) -> PreparedSet:
    files = sorted(p for p in Path(dicom_dir).rglob("*.dcm"))
    if not files:
        raise FileNotFoundError(f"no .dcm files under {dicom_dir}")
    label_of: dict[str, int] = {}
    if labels_csv is not None:
        with open(labels_csv, newline="") as handle:
            label_of = {row["file"]: int(row["label"]) for row in csv.DictReader(handle)}
    arrays = [preprocess_instance(read_dataset(p.read_bytes()), spec).array for p in files]
    names = [str(p.relative_to(dicom_dir)) for p in files]
    labels = np.array([label_of[n] for n in names], dtype=np.int64) if label_of else None
    return PreparedSet(inputs=np.stack(arrays), labels=labels, files=names)
