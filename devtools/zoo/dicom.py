"""In-memory DICOM for the zoo: CT series from HU volumes, PET instances from SUV maps.

CT instances come from :func:`devtools.dicomgen.ct_dataset`. PET instances carry what an
SUVbw calculation reads — (0054,1001) *Units* BQML, (0054,1102) *Decay Correction* START,
(0010,1030) *Patient Weight* and the (0054,0016) *Radiopharmaceutical Information Sequence* —
so the gateway's preprocessing recovers the SUV map they were written from.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Sequence

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import PositronEmissionTomographyImageStorage, generate_uid

from devtools.dicomgen import AXIAL_ORIENTATION, F18_HALF_LIFE_S, ct_dataset, new_instance, set_pixels

__all__ = ["F18_HALF_LIFE_S", "ct_series", "pet_dataset"]

SERIES_START = dt.datetime(2026, 1, 1, 10, 30, 0)


def ct_series(volume_hu: np.ndarray, spacing_mm: Sequence[float], study_uid: str | None = None) -> list[Dataset]:
    """One axial CT series of a (slices, rows, cols) HU volume; ``spacing_mm`` is (slice,
    row, column). Slice k lies at z = k × slice spacing, feet to head."""
    study_uid = study_uid or generate_uid()
    series_uid, frame_of_reference = generate_uid(), generate_uid()
    origin = (-volume_hu.shape[2] * spacing_mm[2] / 2.0, -volume_hu.shape[1] * spacing_mm[1] / 2.0)
    return [
        ct_dataset(
            volume_hu[k],
            pixel_spacing_mm=(float(spacing_mm[1]), float(spacing_mm[2])),
            slice_thickness_mm=float(spacing_mm[0]),
            position_mm=(origin[0], origin[1], k * float(spacing_mm[0])),
            instance_number=k + 1,
            study_uid=study_uid,
            series_uid=series_uid,
            frame_of_reference_uid=frame_of_reference,
        )
        for k in range(volume_hu.shape[0])
    ]


def pet_dataset(
    suv: np.ndarray,
    *,
    pixel_spacing_mm: tuple[float, float],
    patient_weight_kg: float,
    injected_dose_bq: float,
    injection_to_scan_s: float,
    study_uid: str | None = None,
    frame_of_reference_uid: str | None = None,
) -> Dataset:
    """A PET instance of an SUVbw map (rows, cols), stored as activity in Bq/ml with its
    own (0028,1053) *Rescale Slope*, as scanners store it to use the 16-bit range."""
    dose_at_scan_bq = injected_dose_bq * math.pow(2.0, -injection_to_scan_s / F18_HALF_LIFE_S)
    activity = np.clip(suv, 0.0, None) * dose_at_scan_bq / (patient_weight_kg * 1000.0)
    slope = max(float(activity.max()), 1.0) / 32000.0
    stored = np.rint(activity / slope).astype(np.int16)
    injection = SERIES_START - dt.timedelta(seconds=injection_to_scan_s)

    ds = new_instance(PositronEmissionTomographyImageStorage)
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.FrameOfReferenceUID = frame_of_reference_uid or generate_uid()
    ds.Modality = "PT"
    ds.Manufacturer = "medserve-phantom"
    ds.PatientName = "PHANTOM^CHEST"
    ds.PatientID = "PHANTOM-0001"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.PatientWeight = patient_weight_kg
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = SERIES_START.strftime("%Y%m%d")
    ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = SERIES_START.strftime("%H%M%S")
    ds.SeriesNumber = 2
    ds.InstanceNumber = 1
    ds.ImagePositionPatient = [-stored.shape[1] * pixel_spacing_mm[1] / 2.0, -stored.shape[0] * pixel_spacing_mm[0] / 2.0, 0.0]
    ds.ImageOrientationPatient = list(AXIAL_ORIENTATION)
    ds.PixelSpacing = [float(pixel_spacing_mm[0]), float(pixel_spacing_mm[1])]
    ds.SliceThickness = 3.0
    ds.Units = "BQML"
    ds.DecayCorrection = "START"
    ds.CorrectedImage = ["DECY", "ATTN"]
    item = Dataset()
    item.Radiopharmaceutical = "Fluorodeoxyglucose"
    item.RadiopharmaceuticalStartDateTime = injection.strftime("%Y%m%d%H%M%S")
    item.RadiopharmaceuticalStartTime = injection.strftime("%H%M%S")
    item.RadionuclideTotalDose = float(injected_dose_bq)
    item.RadionuclideHalfLife = F18_HALF_LIFE_S
    ds.RadiopharmaceuticalInformationSequence = DicomSequence([item])
    set_pixels(ds, stored, bits_stored=16)
    ds.RescaleIntercept = 0
    ds.RescaleSlope = f"{slope:.10g}"
    return ds
