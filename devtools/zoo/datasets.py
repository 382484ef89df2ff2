"""Calibration and validation folders for the zoo: real DICOM files plus a ``manifest.csv``.

Written as DICOM (:mod:`devtools.dicomgen`, :mod:`devtools.zoo.dicom`) so that export measures
its task metric on inputs that went through DICOM encoding and the gateway's preprocessing.
Phantoms come from the same generators the models were trained on, from other seeds.
Deterministic for a seed (UIDs aside). Manifest columns: one per model input, plus ``label``
(classification) or ``mask`` (a ``.npy`` label map in the model output's geometry).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Callable

import numpy as np
from pydicom.uid import generate_uid

from devtools.dicomgen import ct_dataset
from devtools.phantoms import chest_slice

from . import ct_nodule_segmenter, ct_nodule_segmenter_3d, ct_pet_nodule_classifier
from .dicom import ct_series, pet_dataset

__all__ = ["WRITERS", "write_classifier_set", "write_fusion_set", "write_segmenter_3d_set", "write_segmenter_set"]

MANIFEST = "manifest.csv"


def _write_manifest(directory: Path, rows: list[dict[str, object]]) -> Path:
    path = directory / MANIFEST
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_classifier_set(directory: Path, count: int, seed: int) -> Path:
    """Chest-CT slices (odd ones with 1–2 nodules) for ``ct_nodule_classifier``."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows: list[dict[str, object]] = []
    for i in range(count):
        positive = i % 2 == 1
        phantom = chest_slice(rng, size=256, nodules=int(rng.integers(1, 3)) if positive else 0)
        name = f"slice_{i:04d}.dcm"
        ct_dataset(phantom.hu, pixel_spacing_mm=phantom.spacing_mm, instance_number=i + 1).save_as(directory / name, enforce_file_format=True)
        rows.append({"image": name, "label": int(phantom.has_nodule)})
    return _write_manifest(directory, rows)


def write_segmenter_set(directory: Path, count: int, seed: int) -> Path:
    """Chest-CT slices with 0–3 nodules and 128×128 nodule masks for ``ct_nodule_segmenter``."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows: list[dict[str, object]] = []
    for i in range(count):
        phantom = ct_nodule_segmenter.phantom(rng)
        name = f"slice_{i:04d}"
        ct_dataset(phantom.hu, pixel_spacing_mm=phantom.spacing_mm, instance_number=i + 1).save_as(
            directory / f"{name}.dcm", enforce_file_format=True
        )
        np.save(directory / f"{name}_mask.npy", ct_nodule_segmenter.target_mask(phantom.nodule_mask))
        rows.append({"image": f"{name}.dcm", "mask": f"{name}_mask.npy"})
    return _write_manifest(directory, rows)


def write_segmenter_3d_set(directory: Path, count: int, seed: int) -> Path:
    """CT series (one folder each, 32 slices of 96×96 at 2 mm) with nodule masks for
    ``ct_nodule_segmenter_3d``."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows: list[dict[str, object]] = []
    for i in range(count):
        volume, mask = ct_nodule_segmenter_3d.phantom(rng)
        name = f"series_{i:04d}"
        (directory / name).mkdir(exist_ok=True)
        for k, ds in enumerate(ct_series(volume, ct_nodule_segmenter_3d.SPACING_MM)):
            ds.save_as(directory / name / f"IM{k:05d}.dcm", enforce_file_format=True)
        np.save(directory / f"{name}_mask.npy", mask)
        rows.append({"volume": name, "mask": f"{name}_mask.npy"})
    return _write_manifest(directory, rows)


def write_fusion_set(directory: Path, count: int, seed: int) -> Path:
    """CT + PET slice pairs of one study per case (odd cases with an avid nodule) for
    ``ct_pet_nodule_classifier``: ``case_NNNN/ct.dcm`` and ``case_NNNN/pet.dcm``."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows: list[dict[str, object]] = []
    for i in range(count):
        case = ct_pet_nodule_classifier.fusion_case(rng, positive=i % 2 == 1)
        folder = directory / f"case_{i:04d}"
        folder.mkdir(exist_ok=True)
        study, frame_of_reference = generate_uid(), generate_uid()
        ct_dataset(case.ct_hu, pixel_spacing_mm=case.ct_spacing_mm, study_uid=study, frame_of_reference_uid=frame_of_reference).save_as(
            folder / "ct.dcm", enforce_file_format=True
        )
        pet_dataset(
            case.pet_suv,
            pixel_spacing_mm=case.pet_spacing_mm,
            patient_weight_kg=case.patient_weight_kg,
            injected_dose_bq=case.injected_dose_bq,
            injection_to_scan_s=case.injection_to_scan_s,
            study_uid=study,
            frame_of_reference_uid=frame_of_reference,
        ).save_as(folder / "pet.dcm", enforce_file_format=True)
        rows.append({"ct": f"{folder.name}/ct.dcm", "pet": f"{folder.name}/pet.dcm", "label": case.label})
    return _write_manifest(directory, rows)


#: zoo model name → writer of its labelled DICOM folders.
WRITERS: dict[str, Callable[[Path, int, int], Path]] = {
    "ct_nodule_classifier": write_classifier_set,
    "ct_nodule_segmenter": write_segmenter_set,
    "ct_nodule_segmenter_3d": write_segmenter_3d_set,
    "ct_pet_nodule_classifier": write_fusion_set,
}
