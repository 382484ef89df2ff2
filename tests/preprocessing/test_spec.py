"""The declarative spec: the stored form keeps its meaning, everything round-trips through
JSON, and every malformed spec is refused with InvalidSpec naming the field."""

from __future__ import annotations

import json

import pytest

from preprocessing import InvalidSpec, NormalizeSpec, PreprocessingSpec, WindowSpec

#: The form already stored in model configs (the demo classifier's).
STORED = {"modalities": ["CT"], "window": {"preset": "lung"}, "output_size": [128, 128], "layout": "CHW", "dtype": "float32"}

FULL = {
    "modalities": ["PT"],
    "window": None,
    "output_size": [64, 96, 96],
    "layout": "CDHW",
    "dtype": "float16",
    "extra": {"note": "kept as is"},
    "clip_range": [0.0, 20.0],
    "normalize": {"method": "percentile", "lower": 1.0, "upper": 99.0, "clip": True, "nonzero": True},
    "suv": "bw",
    "spacing_mm": [2.0, 2.0, 2.0],
    "orientation": "SPL",
    "size_mode": "crop_pad",
    "pad_value": 0.0,
    "stack_slices": 1,
    "channels": 1,
}


def test_the_stored_form_keeps_its_meaning():
    spec = PreprocessingSpec.from_dict(STORED)
    assert spec.modalities == ("CT",)
    assert spec.window == WindowSpec(preset="lung")
    assert spec.window.resolve() == (-600.0, 1500.0)
    assert spec.window.applied_function == "LINEAR"
    assert spec.output_size == (128, 128)
    assert (spec.layout, spec.dtype, spec.volumetric) == ("CHW", "float32", False)
    assert (spec.spacing_mm, spec.normalize, spec.suv, spec.orientation, spec.stack_slices) == (None, None, None, None, 1)


@pytest.mark.parametrize(
    "data",
    [
        STORED,  # the demo classifier's spec
        FULL,  # every key
        {"window": {"from_dicom": True, "voi_index": 1, "function": "SIGMOID"}, "stack_slices": 5, "spacing_mm": [1, 1]},  # 2.5D
        {"window": {"center": 40, "width": 400, "function": "LINEAR_EXACT"}, "channels": 3},  # explicit window, RGB model
    ],
)
def test_round_trips_through_json(data):
    spec = PreprocessingSpec.from_dict(data)
    again = PreprocessingSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec
    assert again.to_dict() == spec.to_dict()


def test_full_spec_fields():
    spec = PreprocessingSpec.from_dict(FULL)
    assert spec.normalize == NormalizeSpec("percentile", 1.0, 99.0, True, True)
    assert spec.volumetric and spec.clip_range == (0.0, 20.0) and spec.spacing_mm == (2.0, 2.0, 2.0)


@pytest.mark.parametrize(
    ("data", "pattern"),
    [
        ({"resample": [1, 1]}, r"unknown spec keys: resample"),  # a key the spec does not know
        ({"window": {"preset": "lung", "level": 3}}, r"malformed spec: .*level"),  # unknown window key
        ({"normalize": {"method": "zscore", "mean": 0}}, r"malformed spec: .*mean"),  # unknown normalize key
        ({"window": {"preset": "lungs"}}, r"unknown preset 'lungs'; known: abdomen, bone"),  # typo in a preset
        ({"window": {"preset": "lung", "center": 40, "width": 400}}, r"exactly one of"),  # two window sources
        ({"window": {}}, r"exactly one of"),  # no window source
        ({"window": {"center": 40}}, r"'width' must be given and > 0"),  # center without width
        ({"window": {"center": 40, "width": 0.5}}, r"LINEAR window needs width >= 1"),  # DICOM's LINEAR minimum
        ({"window": {"preset": "lung", "function": "GAMMA"}}, r"function must be one of"),  # unknown VOI function
        ({"window": {"from_dicom": True, "voi_index": -1}}, r"voi_index must be an integer >= 0"),  # negative view
        ({"window": "lung"}, r"window: expected a mapping"),  # a string for an object
        ({"layout": "NCHW"}, r"layout: must be one of \('CHW', 'CDHW'\)"),  # unknown layout
        ({"dtype": "uint8"}, r"dtype: must be 'float32' or 'float16'"),  # integer tensors
        ({"output_size": [128, 128, 1]}, r"layout CHW expects \[rows, columns\]"),  # 3 sizes for 2D
        ({"layout": "CDHW", "output_size": [128, 128]}, r"layout CDHW expects \[depth, rows, columns\]"),  # 2 sizes for 3D
        ({"output_size": [0, 128]}, r"output_size"),  # empty axis
        ({"spacing_mm": [1, 0]}, r"spacing_mm: expected 2 or 3 spacings > 0"),  # zero spacing
        ({"layout": "CDHW", "spacing_mm": [1, 1]}, r"spacing_mm: expected 3 spacings"),  # 2D spacing for 3D
        ({"window": {"preset": "lung"}, "normalize": {"method": "zscore"}}, r"either 'window' or 'normalize'"),  # both
        ({"normalize": {"method": "minmax"}}, r"method must be one of \('zscore', 'percentile'\)"),  # unknown method
        ({"normalize": {"method": "percentile", "lower": 90, "upper": 10}}, r"0 <= lower < upper <= 100"),  # inverted
        ({"clip_range": [100, -100]}, r"clip_range: lower must be < upper"),  # inverted clip
        ({"clip_range": [1, 2, 3]}, r"clip_range: expected \[lower, upper\]"),  # three bounds
        ({"suv": "lbm"}, r"suv: must be one of \('bw',\)"),  # lean body mass SUV is not implemented
        ({"orientation": "SPP"}, r"orientation: expected three letters"),  # one axis twice
        ({"orientation": "spl"}, r"orientation: expected three letters"),  # lower case
        ({"size_mode": "stretch"}, r"size_mode: must be one of"),  # unknown size mode
        ({"stack_slices": 4}, r"stack_slices: must be an odd number"),  # even stack
        ({"layout": "CDHW", "stack_slices": 3}, r"2.5D stacks need layout 'CHW'"),  # stacks of a 3D input
        ({"channels": 2}, r"channels: must be 1 \(grayscale\) or 3 \(RGB\)"),  # two channels
        ({"channels": 3, "stack_slices": 3}, r"use the channels for slices"),  # RGB and stacks
        ({"output_size": ["a", 1]}, r"malformed spec"),  # non-numeric size
        (["CT"], r"spec must be a mapping, got list"),  # not an object at all
    ],
)
def test_malformed_specs_are_refused(data, pattern):
    with pytest.raises(InvalidSpec, match=pattern) as raised:
        PreprocessingSpec.from_dict(data)
    assert raised.value.code == "invalid_spec"
