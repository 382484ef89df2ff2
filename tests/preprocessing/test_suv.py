"""PET body-weight SUV: the factor worked by hand, decay to the series start, and every
missing or unusable attribute named in the error (never its value)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from devtools import testdata
from preprocessing import InvalidDicom, PreprocessingSpec, preprocess_instance, preprocess_series
from preprocessing.suv import suv_bw_factor

WEIGHT_KG, DOSE_BQ, UPTAKE_S = 72.5, 370e6, 3600.0


def _pet(**overrides):
    activity = np.full((3, 8, 8), 5000.0)
    activity[:, 2:6, 2:6] = 20000.0
    arguments = dict(
        pixel_spacing_mm=(4.0, 4.0), distances_mm=[0, 3, 6], patient_weight_kg=WEIGHT_KG,
        injected_dose_bq=DOSE_BQ, injection_to_series_s=UPTAKE_S,
    )
    arguments.update(overrides)
    return activity, testdata.pet_series(activity, **arguments)


def test_factor_decays_the_dose_to_the_series_start():
    _, datasets = _pet()
    decayed = DOSE_BQ * math.exp(-math.log(2) * UPTAKE_S / testdata.F18_HALF_LIFE_S)  # 253.5 MBq left after an hour
    assert suv_bw_factor(datasets[0]) == pytest.approx(WEIGHT_KG * 1000 / decayed, rel=1e-12)


def test_admin_decay_correction_uses_the_injected_dose():
    _, datasets = _pet(decay_correction="ADMIN")
    assert suv_bw_factor(datasets[0]) == pytest.approx(WEIGHT_KG * 1000 / DOSE_BQ, rel=1e-12)


def test_series_in_suv_through_per_slice_rescale():
    activity, datasets = _pet()
    prepared = preprocess_series(datasets, PreprocessingSpec(layout="CDHW", suv="bw"))
    expected = activity * suv_bw_factor(datasets[0])
    np.testing.assert_allclose(prepared.array[0], expected, rtol=1e-4)  # 16-bit storage with a per-slice slope
    assert prepared.applied["suv_bw_factor"] == [pytest.approx(suv_bw_factor(datasets[0]))]


def test_single_instance_in_suv():
    activity, datasets = _pet()
    prepared = preprocess_instance(datasets[0], PreprocessingSpec(suv="bw"))
    np.testing.assert_allclose(prepared.array[0], activity[0] * suv_bw_factor(datasets[0]), rtol=1e-4)


def test_series_time_after_midnight_uses_the_previous_day_for_a_time_only_injection():
    _, datasets = _pet()
    ds = datasets[0]
    del ds.RadiopharmaceuticalInformationSequence[0].RadiopharmaceuticalStartDateTime
    ds.SeriesTime = ds.AcquisitionTime = "003000"
    ds.RadiopharmaceuticalInformationSequence[0].RadiopharmaceuticalStartTime = "233000"
    decayed = DOSE_BQ * 0.5 ** (3600.0 / testdata.F18_HALF_LIFE_S)
    assert suv_bw_factor(ds) == pytest.approx(WEIGHT_KG * 1000 / decayed, rel=1e-12)


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        ("Units=CNTS", r"\(0054,1001\) Units must be BQML \(or GML\), this instance has CNTS"),  # raw counts
        ("PatientWeight=", r"\(0010,1030\) Patient Weight, which is missing"),  # no weight
        ("PatientWeight=0", r"\(0010,1030\) Patient Weight > 0"),  # zero weight
        ("DecayCorrection=NONE", r"\(0054,1102\) Decay Correction must be START or ADMIN"),  # not decay-corrected
        ("RadiopharmaceuticalInformationSequence=", r"\(0054,0016\) Radiopharmaceutical Information Sequence"),  # none
        ("RadionuclideTotalDose=", r"\(0018,1074\) Radionuclide Total Dose"),  # no dose
        ("RadionuclideHalfLife=-1", r"\(0018,1075\) Radionuclide Half Life > 0"),  # impossible half-life
        ("injection_after_scan", r"injection time .* is after the series start"),  # clocks out of order
        ("SeriesDate=", r"\(0008,0021\)/\(0008,0031\) Series Date/Time, which is missing or malformed"),  # no date
    ],
)
def test_unusable_pet_headers_are_named(change, pattern):
    _, datasets = _pet()
    ds = datasets[0]
    item = ds.RadiopharmaceuticalInformationSequence[0]
    if change == "injection_after_scan":
        item.RadiopharmaceuticalStartDateTime = "20260101113000"
    else:
        keyword, value = change.split("=")
        target = item if keyword.startswith("Radionuclide") else ds
        if value == "":
            delattr(target, keyword)
        else:
            setattr(target, keyword, value)
    with pytest.raises(InvalidDicom, match=pattern) as raised:
        suv_bw_factor(ds)
    for private in ("72.5", "370000000", "20260101", "PHANTOM"):
        assert private not in raised.value.message


def test_already_suv_images_keep_their_values():
    _, datasets = _pet()
    datasets[0].Units = "GML"
    assert suv_bw_factor(datasets[0]) == 1.0
