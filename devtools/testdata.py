"""Synthetic DICOM inputs that real test files do not cover: series in any orientation, with
uneven spacing, missing slices or gantry tilt; MR and PET series; enhanced multi-frame CT.

Everything is built in memory (tests write files where they need them) with the geometry a
scanner would write: slice k of a series lies at ``origin + distance_k × normal`` (+ a shear for
gantry tilt), normal = row cosine × column cosine of (0020,0037). CT instances come from
:func:`devtools.dicomgen.ct_dataset`; patient attributes are synthetic by construction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    ExplicitVRLittleEndian,
    MRImageStorage,
    PositronEmissionTomographyImageStorage,
    UID,
    generate_uid,
)

from .dicomgen import AXIAL_ORIENTATION, F18_HALF_LIFE_S, RESCALE_INTERCEPT_HU, ct_dataset, new_instance, set_pixels



SAGITTAL_ORIENTATION = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
CORONAL_ORIENTATION = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
ENHANCED_CT_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.2.1")


def slice_normal(orientation: Sequence[float]) -> np.ndarray:
    """Row cosine × column cosine of an (0020,0037) value."""
    return np.cross(np.asarray(orientation[:3], dtype=float), np.asarray(orientation[3:], dtype=float))


def slice_positions(
    origin_mm: Sequence[float],
    orientation: Sequence[float],
    distances_mm: Sequence[float],
    shear_mm_per_mm: Sequence[float] = (0.0, 0.0, 0.0),
) -> list[tuple[float, float, float]]:
    """(0020,0032) of slices ``distances_mm`` along the normal from ``origin_mm``; a non-zero
    ``shear_mm_per_mm`` (in-plane shift per mm of distance) models gantry tilt."""
    normal = slice_normal(orientation)
    shear = np.asarray(shear_mm_per_mm, dtype=float)
    origin = np.asarray(origin_mm, dtype=float)
    return [tuple(float(v) for v in origin + d * normal + d * shear) for d in distances_mm]  # type: ignore[misc]


def ct_series(
    volume_hu: np.ndarray,
    *,
    pixel_spacing_mm: tuple[float, float],
    distances_mm: Sequence[float],
    orientation: Sequence[float] = AXIAL_ORIENTATION,
    origin_mm: Sequence[float] = (-100.0, -100.0, 0.0),
    shear_mm_per_mm: Sequence[float] = (0.0, 0.0, 0.0),
    transfer_syntax: UID = ExplicitVRLittleEndian,
    shuffle_seed: int | None = 0,
) -> list[Dataset]:
    """One CT series of ``volume_hu`` (slices, rows, cols), slice k at ``distances_mm[k]`` along
    the normal. Instance numbers and list order are shuffled by ``shuffle_seed``, as a PACS
    export might send them, so that only geometry can put the slices in order."""
    study_uid, series_uid = generate_uid(), generate_uid()
    numbers = _permutation(volume_hu.shape[0], shuffle_seed)
    positions = slice_positions(origin_mm, orientation, distances_mm, shear_mm_per_mm)
    thickness = float(np.median(np.diff(distances_mm))) if len(distances_mm) > 1 else 1.0
    datasets = [
        ct_dataset(
            volume_hu[k],
            pixel_spacing_mm=pixel_spacing_mm,
            slice_thickness_mm=abs(thickness),
            position_mm=positions[k],
            orientation=orientation,
            instance_number=int(numbers[k]) + 1,
            study_uid=study_uid,
            series_uid=series_uid,
            transfer_syntax=transfer_syntax,
        )
        for k in range(volume_hu.shape[0])
    ]
    for ds in datasets:
        ds.FrameOfReferenceUID = study_uid
    return _shuffled(datasets, shuffle_seed)


def chest_ct_series(seed: int, slices: int = 24, transfer_syntax: UID = ExplicitVRLittleEndian) -> list[Dataset]:
    """The demo zoo's chest phantom as a CT series a modality would send: ``slices`` 96×96 slices
    of 2 mm pixels, 2 mm apart, one nodule each (:func:`devtools.phantoms.chest_slice`), in
    ``transfer_syntax``; the same ``seed`` gives the same pixels."""
    from .phantoms import chest_slice

    rng = np.random.default_rng(seed)
    volume = np.stack([chest_slice(rng, size=96, nodules=1).hu for _ in range(slices)])
    return ct_series(volume, pixel_spacing_mm=(2.0, 2.0), distances_mm=[2.0 * k for k in range(slices)], transfer_syntax=transfer_syntax)


def write_series(datasets: Sequence[Dataset], folder: Path) -> list[Path]:
    """Each instance as ``<folder>/<SOP Instance UID>.dcm`` (Part 10; ``folder`` created)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for ds in datasets:
        paths.append(folder / f"{ds.SOPInstanceUID}.dcm")
        ds.save_as(paths[-1], enforce_file_format=True)
    return paths


def mr_series(
    signal: np.ndarray,
    *,
    pixel_spacing_mm: tuple[float, float],
    distances_mm: Sequence[float],
    orientation: Sequence[float] = AXIAL_ORIENTATION,
    origin_mm: Sequence[float] = (-100.0, -100.0, 0.0),
    shuffle_seed: int | None = 0,
) -> list[Dataset]:
    """An MR series of unsigned 16-bit ``signal`` (slices, rows, cols), no Modality LUT."""
    series_uid, frame_of_reference = generate_uid(), generate_uid()
    positions = slice_positions(origin_mm, orientation, distances_mm)
    datasets = []
    for k in range(signal.shape[0]):
        ds = _image_dataset(MRImageStorage, "MR", signal[k].astype(np.uint16), series_uid, frame_of_reference)
        ds.ImagePositionPatient = list(positions[k])
        ds.ImageOrientationPatient = [float(v) for v in orientation]
        ds.PixelSpacing = [float(v) for v in pixel_spacing_mm]
        ds.InstanceNumber = k + 1
        datasets.append(ds)
    return _shuffled(datasets, shuffle_seed)


def pet_series(
    activity_bqml: np.ndarray,
    *,
    pixel_spacing_mm: tuple[float, float],
    distances_mm: Sequence[float],
    patient_weight_kg: float,
    injected_dose_bq: float,
    injection_to_series_s: float,
    half_life_s: float = F18_HALF_LIFE_S,
    decay_correction: str = "START",
    origin_mm: Sequence[float] = (-100.0, -100.0, 0.0),
) -> list[Dataset]:
    """A PET series in Bq/ml, each slice stored with its own (0028,1053) *Rescale Slope* (as
    scanners do, to use the 16-bit range), with the Radiopharmaceutical Information an SUV
    calculation needs. The injection is ``injection_to_series_s`` before the series start."""
    series_uid, frame_of_reference = generate_uid(), generate_uid()
    series_start = dt.datetime(2026, 1, 1, 10, 30, 0)
    injection = series_start - dt.timedelta(seconds=injection_to_series_s)
    positions = slice_positions(origin_mm, AXIAL_ORIENTATION, distances_mm)
    datasets = []
    for k in range(activity_bqml.shape[0]):
        peak = float(activity_bqml[k].max()) or 1.0
        slope = peak / 32000.0
        stored = np.rint(activity_bqml[k] / slope).astype(np.int16)
        ds = _image_dataset(PositronEmissionTomographyImageStorage, "PT", stored, series_uid, frame_of_reference)
        ds.ImagePositionPatient = list(positions[k])
        ds.ImageOrientationPatient = list(AXIAL_ORIENTATION)
        ds.PixelSpacing = [float(v) for v in pixel_spacing_mm]
        ds.InstanceNumber = k + 1
        ds.RescaleSlope = f"{slope:.10g}"
        ds.RescaleIntercept = 0
        ds.Units = "BQML"
        ds.DecayCorrection = decay_correction
        ds.CorrectedImage = ["DECY", "ATTN"]
        ds.PatientWeight = patient_weight_kg
        ds.SeriesDate = series_start.strftime("%Y%m%d")
        ds.SeriesTime = series_start.strftime("%H%M%S")
        ds.AcquisitionDate = ds.SeriesDate
        ds.AcquisitionTime = ds.SeriesTime
        item = Dataset()
        item.Radiopharmaceutical = "Fluorodeoxyglucose"
        item.RadiopharmaceuticalStartTime = injection.strftime("%H%M%S")
        item.RadiopharmaceuticalStartDateTime = injection.strftime("%Y%m%d%H%M%S")
        item.RadionuclideTotalDose = injected_dose_bq
        item.RadionuclideHalfLife = half_life_s
        ds.RadiopharmaceuticalInformationSequence = DicomSequence([item])
        datasets.append(ds)
    return datasets


def enhanced_ct(
    volume_hu: np.ndarray,
    *,
    pixel_spacing_mm: tuple[float, float],
    distances_mm: Sequence[float],
    rescale_slopes: Sequence[float],
    orientation: Sequence[float] = AXIAL_ORIENTATION,
    origin_mm: Sequence[float] = (-100.0, -100.0, 0.0),
    frame_order: Sequence[int] | None = None,
) -> Dataset:
    """An Enhanced CT Image Storage object: frames in ``frame_order`` (default: as given),
    per-frame (0020,0032) in the Plane Position Sequence and per-frame Rescale Slope in the
    Pixel Value Transformation Sequence; orientation and spacing shared."""
    count = volume_hu.shape[0]
    order = list(frame_order) if frame_order is not None else list(range(count))
    positions = slice_positions(origin_mm, orientation, distances_mm)
    stored = np.stack(
        [np.rint((volume_hu[k] - RESCALE_INTERCEPT_HU) / rescale_slopes[k]) for k in order]
    ).astype(np.int16)
    ds = _image_dataset(ENHANCED_CT_IMAGE_STORAGE, "CT", stored, generate_uid(), generate_uid())
    ds.NumberOfFrames = count
    shared = Dataset()
    measures = Dataset()
    measures.PixelSpacing = [float(v) for v in pixel_spacing_mm]
    measures.SliceThickness = float(np.median(np.diff(distances_mm))) if count > 1 else 1.0
    plane_orientation = Dataset()
    plane_orientation.ImageOrientationPatient = [float(v) for v in orientation]
    shared.PixelMeasuresSequence = DicomSequence([measures])
    shared.PlaneOrientationSequence = DicomSequence([plane_orientation])
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
    per_frame = []
    for k in order:
        groups = Dataset()
        position = Dataset()
        position.ImagePositionPatient = list(positions[k])
        transformation = Dataset()
        transformation.RescaleSlope = rescale_slopes[k]
        transformation.RescaleIntercept = RESCALE_INTERCEPT_HU
        transformation.RescaleType = "HU"
        groups.PlanePositionSequence = DicomSequence([position])
        groups.PixelValueTransformationSequence = DicomSequence([transformation])
        per_frame.append(groups)
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(per_frame)
    return ds


def _image_dataset(
    sop_class: UID, modality: str, stored: np.ndarray, series_uid: str, frame_of_reference: str
) -> Dataset:
    """A minimal image instance holding ``stored`` (rows, cols) or (frames, rows, cols)."""
    ds = new_instance(sop_class)
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = frame_of_reference
    ds.Modality = modality
    ds.PatientName = "PHANTOM^TEST"
    ds.PatientID = "PHANTOM-0002"
    ds.PatientBirthDate = "19700101"
    set_pixels(ds, stored, bits_stored=16)
    return ds


def _permutation(count: int, seed: int | None) -> np.ndarray:
    return np.arange(count) if seed is None else np.random.default_rng(seed).permutation(count)


def _shuffled(datasets: list[Dataset], seed: int | None) -> list[Dataset]:
    order = _permutation(len(datasets), None if seed is None else seed + 1)
    return [datasets[i] for i in order]


def pydicom_test_file(name: str) -> Path:
    """A test file shipped by pydicom or pydicom-data, found without the network (a miss
    raises instead of downloading)."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name, download=False)
    if path is None:
        raise FileNotFoundError(f"{name} is not installed (pydicom / pydicom-data)")
    return Path(path)


def pynetdicom_test_file(name: str) -> Path:
    """A DICOM file from pynetdicom's own test data."""
    import pynetdicom

    return Path(pynetdicom.__file__).parent / "tests" / "dicom_files" / name
