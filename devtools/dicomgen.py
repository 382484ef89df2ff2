"""Write HU arrays as standards-conformant CT Image Storage instances.

Used to build demo, calibration, test and benchmark inputs with the geometry tags a real
scanner writes (Image Position/Orientation (Patient), Pixel Spacing, Slice Thickness), so that
sorting and spacing logic is exercised. Patient attributes are synthetic by construction.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Sequence

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    PYDICOM_IMPLEMENTATION_UID,
    RLELossless,
    UID,
    generate_uid,
)

RESCALE_INTERCEPT_HU = -1024.0
AXIAL_ORIENTATION = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
#: Fluorine-18's half-life in seconds: (0018,1075) of the PET phantoms' FDG.
F18_HALF_LIFE_S = 6586.2


def new_instance(sop_class: UID) -> Dataset:
    """An empty Part 10 dataset of ``sop_class``: file meta (explicit VR little endian),
    preamble, and fresh (0008,0016)/(0008,0018) SOP Class / Instance UIDs."""
    sop_uid = generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.preamble = b"\0" * 128
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    return ds


def set_pixels(ds: Dataset, stored: np.ndarray, bits_stored: int) -> None:
    """The Image Pixel module of a one-sample (MONOCHROME2) 16-bit image: ``stored``
    (rows, cols), or (frames, rows, cols), of int16 or uint16, of which the low
    ``bits_stored`` bits are used."""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = stored.shape[-2:]
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = int(stored.dtype.kind == "i")
    ds.PixelData = np.ascontiguousarray(stored).tobytes()


def ct_dataset(
    hu: np.ndarray,
    *,
    pixel_spacing_mm: tuple[float, float],
    slice_thickness_mm: float = 2.5,
    position_mm: Sequence[float] = (0.0, 0.0, 0.0),
    orientation: Sequence[float] = AXIAL_ORIENTATION,
    instance_number: int = 1,
    study_uid: str | None = None,
    series_uid: str | None = None,
    frame_of_reference_uid: str | None = None,
    patient_name: str = "PHANTOM^CHEST",
    patient_id: str = "PHANTOM-0001",
    patient_birth_date: str = "19700101",
    transfer_syntax: UID = ExplicitVRLittleEndian,
    window: tuple[float, float] = (-600.0, 1500.0),
) -> Dataset:
    """A CT Image Storage dataset holding ``hu`` (rows, cols), stored as unsigned 16-bit with
    (0028,1052) *Rescale Intercept* -1024 so that stored 0 is -1024 HU."""
    stored = np.clip(np.rint(hu - RESCALE_INTERCEPT_HU), 0, 4095).astype(np.uint16)
    ds = new_instance(CTImageStorage)
    now = dt.datetime(2026, 1, 1, 12, 0, 0)
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.FrameOfReferenceUID = frame_of_reference_uid or generate_uid()
    ds.Modality = "CT"
    ds.Manufacturer = "medserve-phantom"
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = patient_birth_date
    ds.PatientSex = "O"
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = now.strftime("%Y%m%d")
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = now.strftime("%H%M%S")
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = instance_number
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.BodyPartExamined = "CHEST"
    ds.KVP = 120
    ds.PatientPosition = "FFS"
    ds.ImagePositionPatient = [float(v) for v in position_mm]
    ds.ImageOrientationPatient = [float(v) for v in orientation]
    ds.PixelSpacing = [float(pixel_spacing_mm[0]), float(pixel_spacing_mm[1])]
    ds.SliceThickness = float(slice_thickness_mm)
    set_pixels(ds, stored, bits_stored=12)
    ds.RescaleIntercept = RESCALE_INTERCEPT_HU
    ds.RescaleSlope = 1.0
    ds.RescaleType = "HU"
    ds.WindowCenter, ds.WindowWidth = window
    if transfer_syntax != ExplicitVRLittleEndian:
        if transfer_syntax != RLELossless:
            ds.compress(transfer_syntax, stored)
        else:
            ds.compress(RLELossless)
    return ds


def write_ct_series(
    directory: Path | str,
    volume_hu: np.ndarray,
    *,
    spacing_mm: tuple[float, float, float],
    origin_mm: Sequence[float] = (-180.0, -180.0, 0.0),
    transfer_syntax: UID = ExplicitVRLittleEndian,
    shuffle_seed: int | None = 0,
) -> list[Path]:
    """Write a (slices, rows, cols) HU volume as one axial series, one file per slice.

    ``spacing_mm`` is (slice, row, column). Slices go from ``origin_mm`` along +z (feet to head
    in LPS). Instance numbers and file names are shuffled by ``shuffle_seed`` so that readers
    must sort by geometry, as with a real PACS export. Returns the paths in slice order.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    study_uid, series_uid, frame_of_reference_uid = generate_uid(), generate_uid(), generate_uid()
    n = volume_hu.shape[0]
    order = np.arange(n)
    if shuffle_seed is not None:
        np.random.default_rng(shuffle_seed).shuffle(order)
    paths: list[Path] = []
    for z in range(n):
        position = (origin_mm[0], origin_mm[1], origin_mm[2] + z * spacing_mm[0])
        ds = ct_dataset(
            volume_hu[z],
            pixel_spacing_mm=(spacing_mm[1], spacing_mm[2]),
            slice_thickness_mm=spacing_mm[0],
            position_mm=position,
            instance_number=int(order[z]) + 1,
            study_uid=study_uid,
            series_uid=series_uid,
            frame_of_reference_uid=frame_of_reference_uid,
            transfer_syntax=transfer_syntax,
        )
        path = directory / f"IM{int(order[z]):05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
