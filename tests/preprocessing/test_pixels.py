"""Pixel semantics on real files, against pydicom's own LUT functions: Modality LUT (HU),
VOI LUT / windows (every function, multi-valued, LUT sequences), MONOCHROME1, PALETTE COLOR
and YBR, padding, and per-frame rescale of enhanced objects."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut, apply_windowing, convert_color_space
from pydicom.pixels import pixel_array as pydicom_pixel_array

from devtools import testdata
from preprocessing import PreprocessingSpec, decode_frame, open_instance, preprocess_instance, read_dataset
from preprocessing.frames import instance_frames
from preprocessing.pixels import (
    apply_dicom_voi,
    apply_window,
    dicom_window,
    linear_rescale,
    padding_mask,
    voi_output_range,
)
from preprocessing.volume import load_volume

#: At most this many frames of a long multi-frame object are checked.
_FRAMES = 12


def _frames(instance):
    frames = instance_frames(instance)
    return frames if len(frames) <= _FRAMES else [frames[0], frames[len(frames) // 2], frames[-1]]


class TestModalityLut:
    def test_hu_equal_pydicom_on_every_grayscale_real_image(self, real_grayscale_image):
        """Our float32 volume path (rescale deferred past decoding) against pydicom's
        ``apply_modality_lut`` on each frame's own header; padding pixels are checked apart."""
        instance = open_instance(real_grayscale_image.data)
        frames = _frames(instance)
        volume = load_volume(frames)
        for frame, ours in zip(frames, volume):
            stored = decode_frame(instance, frame.index)
            expected = apply_modality_lut(stored, frame.header)
            mask = padding_mask(frame.header, stored)
            keep = np.ones(stored.shape, bool) if mask is None else ~mask
            scale = max(1.0, float(np.abs(expected).max()))
            np.testing.assert_allclose(ours[keep], expected[keep], rtol=0, atol=scale * 2e-7)
            if mask is not None:
                np.testing.assert_array_equal(ours[mask], np.float32(expected[keep].min()))

    @pytest.mark.parametrize(
        ("source", "name", "padded"),
        [
            ("pydicom-data", "693_UNCI.dcm", 494),  # -2000 stored padding outside the reconstruction circle
            ("pydicom-data", "693_J2KR.dcm", 55772),  # same scanner, a different image with a wide padded border
            ("pydicom", "CT_small.dcm", 0),  # declares -2000 but no pixel carries it
        ],
    )
    def test_pixel_padding_value_marks_padding(self, real_file, source, name, padded):
        ds = real_file(source, name).dataset()
        mask = padding_mask(ds, ds.pixel_array)
        assert (0 if mask is None else int(mask.sum())) == padded

    def test_modality_lut_sequence_is_a_table_not_a_rescale(self, real_file):
        ds = real_file("pydicom-data", "mlut_18.dcm").dataset()
        assert linear_rescale(ds) is None
        np.testing.assert_array_equal(
            load_volume(instance_frames(open_instance(ds)))[0], apply_modality_lut(ds.pixel_array, ds)
        )

    def test_enhanced_ct_functional_groups_give_each_frame_its_rescale(self, real_file):
        """eCT_Supplemental keeps Rescale Intercept -1024 only in its Shared Functional Groups:
        pydicom's top-level ``apply_modality_lut`` would not see it."""
        ds = real_file("pydicom-data", "eCT_Supplemental.dcm").dataset()
        volume = load_volume(instance_frames(open_instance(ds)))
        np.testing.assert_array_equal(volume, ds.pixel_array.astype(np.float32) - 1024.0)

    def test_per_frame_rescale_slopes_of_a_synthetic_enhanced_ct(self, rng):
        hu = np.rint(rng.uniform(-1000, 1500, size=(4, 8, 10)))
        slopes = [1.0, 2.0, 0.5, 1.0]
        ds = testdata.enhanced_ct(hu, pixel_spacing_mm=(1.0, 1.0), distances_mm=[0, 2, 4, 6], rescale_slopes=slopes)
        expected = np.stack([np.rint((hu[k] + 1024) / s) * s - 1024 for k, s in enumerate(slopes)])
        np.testing.assert_array_equal(load_volume(instance_frames(open_instance(ds))), expected)


class TestVoiLut:
    def test_instance_voi_equals_pydicom_apply_voi_lut_for_every_view(self, real_voi_image):
        instance = open_instance(real_voi_image.data)
        for frame in _frames(instance)[:2]:
            values = load_volume([frame])[0]
            header = frame.header
            views = len(header.VOILUTSequence) if header.get("VOILUTSequence") else len(np.atleast_1d(header.WindowCenter))
            for index in range(views):
                ours = apply_dicom_voi(values, header, index)
                reference_input = np.rint(values).astype(np.int64) if header.get("VOILUTSequence") else values
                expected = np.asarray(apply_voi_lut(reference_input, header, index=index), dtype=np.float64)
                if header.get("VOILUTSequence"):
                    low, high = 0.0, 2.0 ** int(header.VOILUTSequence[index].LUTDescriptor[2]) - 1
                else:
                    low, high = voi_output_range(header)
                np.testing.assert_allclose(ours, (expected - low) / (high - low), rtol=0, atol=2e-6)

    @pytest.mark.parametrize(
        "function",
        [
            "LINEAR",  # PS3.3 C.11.2.1.2.1, (center - 0.5, width - 1)
            "LINEAR_EXACT",  # C.11.2.1.3.2, no half-pixel offsets
            "SIGMOID",  # C.11.2.1.3.1, logistic
        ],
    )
    def test_float32_window_equals_pydicom_apply_windowing(self, real_window_image, function):
        frame = _frames(open_instance(real_window_image.data))[0]
        values = load_volume([frame])[0]
        center, width = dicom_window(frame.header)
        header = frame.header.copy()
        header.VOILUTFunction = function
        header.WindowCenter, header.WindowWidth = center, width
        low, high = voi_output_range(header)
        expected = (apply_windowing(values.astype(np.float64), header) - low) / (high - low)
        np.testing.assert_allclose(apply_window(values, center, width, function), expected, rtol=0, atol=2e-6)

    def test_a_second_window_view_is_used_when_asked(self, real_file):
        ds = real_file("pydicom-data", "MR-SIEMENS-DICOM-WithOverlays.dcm").dataset()
        assert dicom_window(ds, 0) == (450.0, 790.0)
        assert dicom_window(ds, 1) == (200.0, 443.0)
        assert dicom_window(ds, 2) is None
        first = preprocess_instance(ds, PreprocessingSpec.from_dict({"window": {"from_dicom": True}}))
        second = preprocess_instance(ds, PreprocessingSpec.from_dict({"window": {"from_dicom": True, "voi_index": 1}}))
        low, high = voi_output_range(ds)
        for prepared, index in ((first, 0), (second, 1)):
            expected = (apply_voi_lut(ds.pixel_array.astype(np.float64), ds, index=index) - low) / (high - low)
            np.testing.assert_allclose(prepared.array[0], expected, atol=2e-6)


class TestMonochrome1:
    def test_windowed_monochrome1_is_the_inverted_dicom_window(self, real_file):
        ds = real_file("pydicom-data", "RG1_UNCI.dcm").dataset()
        prepared = preprocess_instance(ds, PreprocessingSpec.from_dict({"window": {"from_dicom": True}}))
        low, high = voi_output_range(ds)
        expected = 1.0 - (apply_voi_lut(ds.pixel_array.astype(np.float64), ds) - low) / (high - low)
        np.testing.assert_allclose(prepared.array[0], expected, atol=2e-6)
        assert prepared.applied["monochrome1_inverted"] is True

    def test_unwindowed_monochrome1_mirrors_the_image_range(self, real_file):
        ds = real_file("dicomdir", "77654033/CR1/6154").dataset()
        values = apply_modality_lut(ds.pixel_array, ds)
        prepared = preprocess_instance(ds, PreprocessingSpec())
        np.testing.assert_allclose(prepared.array[0], values.max() + values.min() - values, rtol=1e-6)


class TestColor:
    def test_color_images_become_channels_first_rgb(self, real_color_image):
        ds = real_color_image.dataset()
        instance = open_instance(real_color_image.data)
        frame = instance_frames(instance)[0]
        stored = decode_frame(instance, 0)
        if str(ds.PhotometricInterpretation) == "PALETTE COLOR":
            expected = apply_color_lut(stored, ds)
        else:
            expected = stored
        np.testing.assert_array_equal(load_volume([frame])[0], expected.astype(np.float32))

    @pytest.mark.parametrize(
        ("source", "name", "interpretation"),
        [
            ("pydicom", "SC_rgb_dcmtk_+eb+cy+n1.dcm", "YBR_FULL"),  # JPEG baseline YCbCr 4:4:4
            ("pydicom", "SC_rgb_dcmtk_+eb+cy+s2.dcm", "YBR_FULL_422"),  # JPEG baseline YCbCr 4:2:2
            ("pydicom-data", "SC_ybr_full_uncompressed.dcm", "YBR_FULL"),  # uncompressed YCbCr
        ],
    )
    def test_ybr_is_converted_to_rgb(self, real_file, source, name, interpretation):
        ds = real_file(source, name).dataset()
        ycbcr = pydicom_pixel_array(ds, raw=True)
        expected = convert_color_space(ycbcr, "YBR_FULL", "RGB")
        prepared = preprocess_instance(ds, PreprocessingSpec(channels=3))
        assert str(ds.PhotometricInterpretation) == interpretation
        np.testing.assert_array_equal(prepared.array, np.moveaxis(expected, -1, 0).astype(np.float32))

    def test_palette_color_single_frame_is_rgb(self, real_file):
        ds = real_file("pydicom", "examples_palette.dcm").dataset()
        prepared = preprocess_instance(read_dataset(real_file("pydicom", "examples_palette.dcm").data), PreprocessingSpec(channels=3))
        np.testing.assert_array_equal(prepared.array, np.moveaxis(apply_color_lut(ds.pixel_array, ds), -1, 0))
