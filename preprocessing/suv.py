"""PET: activity concentration (Bq/ml) → body-weight standardized uptake value (SUVbw).

    SUVbw = activity (Bq/ml) × (0010,1030) Patient Weight (g) / injected dose at scan time (Bq)

The injected dose is (0018,1074) *Radionuclide Total Dose* from the (0054,0016) *Radiopharmaceutical
Information Sequence*, decayed with (0018,1075) *Radionuclide Half Life* from the injection,
(0018,1078) *Radiopharmaceutical Start DateTime* (or the series date with (0018,1072)
*Radiopharmaceutical Start Time*), to the time the images are decay-corrected to, per
(0054,1102) *Decay Correction*: ``START`` — the series start, (0008,0021)/(0008,0031), or the
acquisition start (0008,0022)/(0008,0032) when that is earlier, as the QIBA SUV profile
prescribes for series times rewritten by post-processing — or ``ADMIN``, the injection itself.
Images that are not decay-corrected (``NONE``) would need a per-frame correction and are
refused. Error messages name tags, never values: weights, doses and dates are patient data.
"""

from __future__ import annotations

import datetime as dt
import math

from pydicom.dataset import Dataset
from pydicom.valuerep import DA, DT, TM

from .errors import InvalidDicom

_SUV_UNITS = "GML"
_ACTIVITY_UNITS = "BQML"


def suv_bw_factor(header: Dataset) -> float:
    """The factor that turns this PET instance's modality values into SUVbw (g/ml).

    1.0 when (0054,1001) *Units* is already GML. Raises :class:`InvalidDicom` naming the
    missing or unusable attribute.
    """
    units = str(header.get("Units", "")).strip().upper()
    if units == _SUV_UNITS:
        return 1.0
    if units != _ACTIVITY_UNITS:
        raise InvalidDicom(
            f"SUV needs activity in Bq/ml: (0054,1001) Units must be BQML (or GML), this instance has "
            f"{units or 'none'}"
        )
    weight_kg = _positive(header.get("PatientWeight"), "(0010,1030) Patient Weight")
    info = header.get("RadiopharmaceuticalInformationSequence")
    if not info:
        raise InvalidDicom("SUV needs the (0054,0016) Radiopharmaceutical Information Sequence")
    item = info[0]
    dose_bq = _positive(item.get("RadionuclideTotalDose"), "(0018,1074) Radionuclide Total Dose")
    half_life_s = _positive(item.get("RadionuclideHalfLife"), "(0018,1075) Radionuclide Half Life")
    correction = str(header.get("DecayCorrection", "")).strip().upper()
    if correction == "ADMIN":
        return weight_kg * 1000.0 / dose_bq
    if correction != "START":
        raise InvalidDicom(
            "SUV needs decay-corrected images: (0054,1102) Decay Correction must be START or ADMIN"
        )
    elapsed_s = (_scan_start(header) - _injection(item, header)).total_seconds()
    if elapsed_s < 0:
        raise InvalidDicom(
            "the injection time (0018,1078)/(0018,1072) is after the series start (0008,0021)/(0008,0031)"
        )
    return weight_kg * 1000.0 / (dose_bq * math.pow(2.0, -elapsed_s / half_life_s))


def _injection(item: Dataset, header: Dataset) -> dt.datetime:
    stamp = item.get("RadiopharmaceuticalStartDateTime")
    if stamp:
        return _naive(DT(stamp), "(0018,1078) Radiopharmaceutical Start DateTime")
    time = item.get("RadiopharmaceuticalStartTime")
    if not time:
        raise InvalidDicom("SUV needs the injection time: (0018,1078) or (0018,1072) Radiopharmaceutical Start Time")
    injection = _combine(header.get("SeriesDate"), time, "(0018,1072) Radiopharmaceutical Start Time")
    series = _scan_start(header)
    return injection - dt.timedelta(days=1) if injection > series else injection


def _scan_start(header: Dataset) -> dt.datetime:
    series = _combine(header.get("SeriesDate"), header.get("SeriesTime"), "(0008,0021)/(0008,0031) Series Date/Time")
    if header.get("AcquisitionDate") and header.get("AcquisitionTime"):
        acquisition = _combine(header.AcquisitionDate, header.AcquisitionTime, "(0008,0022)/(0008,0032)")
        return min(series, acquisition)
    return series


def _combine(date: object, time: object, name: str) -> dt.datetime:
    try:
        return dt.datetime.combine(DA(str(date)), TM(str(time)))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidDicom(f"SUV needs {name}, which is missing or malformed") from None


def _naive(value: object, name: str) -> dt.datetime:
    if not isinstance(value, dt.datetime):
        raise InvalidDicom(f"SUV needs {name}, which is malformed")
    return value.replace(tzinfo=None)


def _positive(value: object, name: str) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidDicom(f"SUV needs {name}, which is missing or not a number") from None
    if not number > 0:
        raise InvalidDicom(f"SUV needs {name} > 0")
    return number
