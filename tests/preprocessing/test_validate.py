"""Header values are checked before pixel work: numbers, finite, physically sane; the tag is
named, the value never."""

from __future__ import annotations

import pytest
from pydicom import dcmread
from pydicom.dataelem import RawDataElement
from pydicom.tag import Tag

from devtools.testdata import pydicom_test_file
from preprocessing import InputTooLarge, InvalidDicom, configure_limits, current_limits, plan_series, preprocess_instance
from preprocessing.spec import PreprocessingSpec
from preprocessing.validate import RULES, check_header


def _ct(**values: object):
    ds = dcmread(pydicom_test_file("CT_small.dcm"))
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    return ds


def _with_raw(ds, tag: int, vr: str, raw: bytes):
    """``ds`` with an element as it arrives from the wire: bytes pydicom converts on access."""
    ds[Tag(tag)] = RawDataElement(Tag(tag), vr, len(raw), raw, 0, False, True)
    return ds


def test_every_real_ct_passes_unchanged(real_ct_files) -> None:
    for path in real_ct_files.values():
        ds = dcmread(path)
        assert check_header(ds) is ds


@pytest.mark.parametrize(
    ("tag", "vr", "raw", "named"),
    [
        (0x00180050, "DS", b"abc ", r"\(0018,0050\) Slice Thickness cannot be read as a number"),  # once raised in drift code
        (0x00180050, "DS", b"NaN ", r"\(0018,0050\) Slice Thickness must be a finite number"),
        (0x00180050, "DS", b"-3", r"\(0018,0050\) Slice Thickness must be a finite number"),
        (0x00280030, "DS", b"1e308\\1 ", r"\(0028,0030\) Pixel Spacing must be a finite number"),
        (0x00280030, "DS", b"0.5 ", r"\(0028,0030\) Pixel Spacing needs 2 value"),
        (0x00281053, "DS", b"NaN ", r"\(0028,1053\) Rescale Slope must be a finite number"),  # once a 502 from Triton
        (0x00281053, "DS", b"0 ", r"\(0028,1053\) Rescale Slope .* other than 0"),
        (0x00281052, "DS", b"1e300 ", r"\(0028,1052\) Rescale Intercept must be a finite number"),
        (0x00200037, "DS", b"NaN\\0\\0\\0\\1\\0", r"\(0020,0037\) Image Orientation Patient must be a finite"),
        (0x00200032, "DS", b"0\\0\\1e9 ", r"\(0020,0032\) Image Position Patient must be a finite"),
        (0x00281050, "DS", b"inf ", r"\(0028,1050\) Window Center must be a finite"),
    ],
)
def test_insane_values_are_refused_naming_the_tag_not_the_value(tag: int, vr: str, raw: bytes, named: str) -> None:
    ds = _with_raw(_ct(), tag, vr, raw)
    with pytest.raises(InvalidDicom, match=named) as caught:
        check_header(ds)
    value = raw.strip().decode()
    assert len(value) < 3 or value not in caught.value.message


def test_absent_values_pass_their_use_decides() -> None:
    ds = _ct()
    del ds.PixelSpacing, ds.SliceThickness, ds.RescaleSlope, ds.RescaleIntercept
    assert check_header(ds) is ds


def test_every_rule_names_its_tag() -> None:
    assert all(rule.tag.startswith("(") and len(rule.tag) == 11 for rule in RULES.values())


def test_the_2d_path_checks_before_decoding() -> None:
    ds = _with_raw(_ct(), 0x00281053, "DS", b"NaN ")
    with pytest.raises(InvalidDicom, match=r"Rescale Slope"):
        preprocess_instance(ds, PreprocessingSpec.from_dict({"modalities": ["CT"], "window": {"preset": "lung"}, "output_size": [64, 64]}))


@pytest.fixture
def small_limits():
    before = current_limits()
    yield configure_limits
    configure_limits(before)


def test_a_series_over_the_instance_limit_is_refused_before_planning(small_limits) -> None:
    small_limits(max_instances=2)
    series = [pydicom_test_file("CT_small.dcm")] * 3
    with pytest.raises(InputTooLarge, match=r"3 instances; at most 2"):
        plan_series(series)


def test_a_series_over_the_voxel_limit_is_refused_before_planning(small_limits) -> None:
    small_limits(max_voxels_per_request=128 * 128 - 1)  # CT_small is 128 x 128
    with pytest.raises(InputTooLarge, match=r"16384 pixels in all"):
        plan_series([pydicom_test_file("CT_small.dcm")])


def test_a_resampling_grid_over_the_limit_is_refused_before_allocating(small_limits) -> None:
    small_limits(max_pixels_per_frame=20_000)  # CT_small's 128 x 128 pass; at 0.1 mm it would be ~845 x 845
    spec = PreprocessingSpec.from_dict({"modalities": ["CT"], "spacing_mm": [0.1, 0.1], "window": {"preset": "lung"}})
    with pytest.raises(InputTooLarge, match=r"resampling to the model's spacing would make"):
        preprocess_instance(_ct(), spec)
