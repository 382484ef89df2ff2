"""Resampling against scipy.ndimage and SimpleITK on the same grids; the 2D resize the demo
models were trained with stays bit-identical; the streaming loader equals the in-memory path."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from devtools import testdata
from preprocessing import plan_series
from preprocessing.resample import (
    PlaneResampler,
    identity_taps,
    output_length,
    position_taps,
    resample_to_spacing,
    resize,
    resize_index_map,
    spacing_taps,
)
from preprocessing.volume import load_resampled, load_volume

#: float32 interpolation of values up to a few thousand (HU) against float64 references.
HU_TOLERANCE = 1e-3


@pytest.mark.parametrize(
    ("size", "spacing_in", "spacing_out", "reverse"),
    [
        (300, 1.0, 1.5, False),  # the benchmark's slice axis, downsampled
        (512, 0.703125, 1.5, False),  # the benchmark's in-plane axes
        (40, 2.5, 1.0, False),  # upsampled thick slices
        (17, 0.8, 0.8, False),  # same spacing: the identity
        (33, 1.2, 0.7, True),  # walked backwards (a flipped axis of a reorientation)
    ],
)
def test_spacing_taps_equal_map_coordinates(rng, size, spacing_in, spacing_out, reverse):
    signal = rng.normal(0, 500, size).astype(np.float32)
    taps = spacing_taps(size, spacing_in, spacing_out, reverse=reverse)
    count = output_length(size, spacing_in, spacing_out)
    coordinates = np.arange(count) * spacing_out / spacing_in
    if reverse:
        coordinates = size - 1 - coordinates
    expected = ndimage.map_coordinates(signal.astype(np.float64), [coordinates], order=1, mode="nearest")
    np.testing.assert_allclose(taps.apply(signal, 0), expected, atol=HU_TOLERANCE)
    assert taps.size == count == max(1, round(size * spacing_in / spacing_out))


def test_volume_resampling_equals_map_coordinates(rng):
    volume = rng.normal(0, 500, (20, 30, 26)).astype(np.float32)
    spacing_in, spacing_out = (2.0, 0.9, 0.8), (1.5, 1.25, 1.1)
    ours = resample_to_spacing(volume, spacing_in, spacing_out)
    grid = [np.arange(n) * o / i for n, i, o in zip(ours.shape, spacing_in, spacing_out)]
    coordinates = np.meshgrid(*grid, indexing="ij")
    expected = ndimage.map_coordinates(volume.astype(np.float64), coordinates, order=1, mode="nearest")
    np.testing.assert_allclose(ours, expected, atol=HU_TOLERANCE)


def test_volume_resampling_equals_simpleitk_linear_resample(rng):
    import SimpleITK as sitk

    volume = rng.normal(0, 500, (24, 40, 36)).astype(np.float32)
    spacing_in, spacing_out = (2.5, 0.7, 0.75), (1.6, 1.2, 1.3)
    ours = resample_to_spacing(volume, spacing_in, spacing_out)
    image = sitk.GetImageFromArray(volume)
    image.SetSpacing(spacing_in[::-1])
    image.SetOrigin((-10.0, 20.0, 5.0))
    inside = [min(n, int((m - 1) * i / o) + 1) for n, m, i, o in zip(ours.shape, volume.shape, spacing_in, spacing_out)]
    resampled = sitk.Resample(
        image, inside[::-1], sitk.Transform(), sitk.sitkLinear, image.GetOrigin(), spacing_out[::-1], image.GetDirection(), 0.0, sitk.sitkFloat64
    )
    expected = sitk.GetArrayFromImage(resampled)
    np.testing.assert_allclose(ours[: inside[0], : inside[1], : inside[2]], expected, atol=HU_TOLERANCE)


def test_uneven_slices_are_interpolated_at_their_true_positions(rng):
    positions = np.array([0.0, 2.0, 4.5, 6.0, 8.0, 10.2])
    signal = rng.normal(0, 300, positions.size).astype(np.float32)
    taps = position_taps(positions, 2.0, 1.0)
    targets = positions[0] + np.arange(taps.size) * 1.0
    np.testing.assert_allclose(taps.apply(signal, 0), np.interp(targets, positions, signal), atol=HU_TOLERANCE)


@pytest.mark.parametrize(
    ("shape", "dtype", "row_spacings", "column_spacings"),
    [
        ((30, 28), np.uint16, (0.9, 0.5), (1.0, 1.3)),  # stored integers, both axes interpolated
        ((30, 28), np.int16, (1.0, 2.0), (1.0, 3.0)),  # whole-sample steps: no second tap read at all
        ((30, 28), np.float32, (0.7, 0.7), (0.8, 0.8)),  # modality values, same spacing
        ((20, 24, 3), np.uint8, (0.5, 0.8), (0.5, 0.3)),  # RGB frame
    ],
)
def test_plane_resampler_equals_two_axis_passes(rng, shape, dtype, row_spacings, column_spacings):
    frame = rng.integers(0, 250, shape).astype(dtype)
    rows = spacing_taps(shape[0], *row_spacings)
    columns = spacing_taps(shape[1], *column_spacings, reverse=True)
    resample = PlaneResampler(rows, columns)
    expected = columns.apply(rows.apply(frame, 0), 1)
    for _ in range(2):  # scratch buffers are reused on the second frame
        np.testing.assert_allclose(resample(frame), expected, atol=1e-4)


class TestResize:
    @pytest.mark.parametrize(
        ("shape", "size"),
        [
            ((128, 128), (128, 128)),  # already that size: returned as is
            ((512, 512), (128, 128)),  # the demo classifier's CT input
            ((100, 60), (224, 224)),  # upsampled, anisotropic
        ],
    )
    def test_equals_the_zoom_call_the_demo_models_were_trained_with(self, rng, shape, size):
        image = rng.normal(0, 1, shape).astype(np.float32)
        factors = (size[0] / shape[0], size[1] / shape[1])
        expected = ndimage.zoom(image, factors, order=1, mode="nearest", grid_mode=True)[: size[0], : size[1]]
        resized = resize(image, size)
        assert resized.dtype == np.float32 and resized.shape == expected.shape
        np.testing.assert_allclose(resized, expected, rtol=0, atol=1e-6)  # float32 rounding

    def test_other_orders_and_dtypes_are_zoom_itself(self, rng):
        image = rng.normal(0, 1, (60, 50))  # float64
        expected = ndimage.zoom(image, (32 / 60, 40 / 50), order=1, mode="nearest", grid_mode=True)
        np.testing.assert_array_equal(resize(image, (32, 40)), expected)
        labels = rng.integers(0, 3, (60, 50)).astype(np.uint8)
        expected = ndimage.zoom(labels, (32 / 60, 40 / 50), order=0, mode="nearest", grid_mode=True)
        np.testing.assert_array_equal(resize(labels, (32, 40), order=0), expected)

    def test_in_plane_resize_of_a_stack_equals_per_slice_resize(self, rng):
        stack = rng.normal(0, 1, (3, 50, 40)).astype(np.float32)
        resized = resize(stack, (32, 24), axes=(1, 2))
        for k in range(3):
            np.testing.assert_allclose(resized[k], resize(stack[k], (32, 24)), atol=1e-6)

    def test_index_map_locates_the_resized_samples(self):
        ramp = np.arange(40, dtype=np.float64) * 3.0 + 7.0
        start, step = resize_index_map(40, 25)
        inside = slice(1, 24)  # away from the clamped edges
        expected = (start + np.arange(25) * step) * 3.0 + 7.0
        np.testing.assert_allclose(resize(ramp, (25,))[inside], expected[inside], atol=1e-9)


class TestStreamingLoader:
    @pytest.mark.parametrize(
        ("spacing_out", "reverse"),
        [
            ((1.5, 1.1, 1.3), (False, False, False)),  # downsampled slices, in-plane upsampled
            ((0.9, 0.5, 2.0), (True, False, True)),  # upsampled slices, axes walked backwards
        ],
    )
    def test_equals_resampling_the_loaded_volume(self, rng, spacing_out, reverse):
        hu = np.rint(rng.uniform(-1000, 2000, (9, 30, 28))).astype(np.float32)
        datasets = testdata.ct_series(hu, pixel_spacing_mm=(0.9, 1.0), distances_mm=np.arange(9) * 1.25)
        plan = plan_series(datasets)
        taps = [
            position_taps(plan.slice_positions_mm, plan.spacing_mm[0], spacing_out[0], reverse=reverse[0]),
            spacing_taps(30, 0.9, spacing_out[1], reverse=reverse[1]),
            spacing_taps(28, 1.0, spacing_out[2], reverse=reverse[2]),
        ]
        streamed = load_resampled(plan.frames, *taps)
        in_memory = load_volume(plan.frames)
        for axis, axis_taps in enumerate(taps):
            in_memory = axis_taps.apply(in_memory, axis)
        np.testing.assert_allclose(streamed, in_memory, atol=HU_TOLERANCE)

    def test_identity_taps_keep_the_volume(self, rng):
        hu = np.rint(rng.uniform(-1000, 2000, (4, 12, 10))).astype(np.float32)
        plan = plan_series(testdata.ct_series(hu, pixel_spacing_mm=(1, 1), distances_mm=[0, 1, 2, 3]))
        streamed = load_resampled(plan.frames, identity_taps(4), identity_taps(12), identity_taps(10, reverse=True))
        np.testing.assert_array_equal(streamed, hu[:, :, ::-1])
