"""Tensor shapes: centered crop/pad, 2.5D stacks with repeated edge slices, channel-first."""

from __future__ import annotations

import numpy as np
import pytest

from preprocessing.layout import crop_or_pad, image_to_chw, volume_to_cdhw, volume_to_slices


@pytest.mark.parametrize(
    ("row", "size", "expected", "start"),
    [
        ([1, 2, 3, 4, 5, 6], 4, [2, 3, 4, 5], 1),  # cropped around the center
        ([1, 2, 3, 4, 5, 6], 5, [1, 2, 3, 4, 5], 0),  # odd crop: the extra element comes off the end
        ([1, 2, 3], 6, [-1, 1, 2, 3, -1, -1], -1),  # padded, the extra element after
        ([1, 2, 3], 3, [1, 2, 3], 0),  # already that size
    ],
)
def test_crop_or_pad_centers_the_array(row, size, expected, start):
    out, starts = crop_or_pad(np.array(row, dtype=np.float32), (size,), (0,), pad_value=-1.0)
    np.testing.assert_array_equal(out, expected)
    assert starts == [start]


def test_crop_or_pad_works_on_chosen_axes_of_a_stack():
    stack = np.arange(4 * 10 * 12, dtype=np.float32).reshape(4, 10, 12)
    out, starts = crop_or_pad(stack, (5, 14), (1, 2), pad_value=0.0)
    assert out.shape == (4, 5, 14) and starts == [2, -1]
    np.testing.assert_array_equal(out[:, :, 1:13], stack[:, 2:7, :])
    assert not out[:, :, 0].any() and not out[:, :, 13].any()


def test_stacks_of_adjacent_slices_repeat_the_edges():
    volume = np.arange(5, dtype=np.float32)[:, None, None] * np.ones((5, 2, 3), np.float32)
    stacks = volume_to_slices(volume, channels=1, stack_slices=3)
    assert stacks.shape == (5, 3, 2, 3)
    np.testing.assert_array_equal(stacks[:, :, 0, 0], [[0, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 4]])


@pytest.mark.parametrize(
    ("array", "channels", "convert", "shape"),
    [
        (np.zeros((4, 5)), 1, image_to_chw, (1, 4, 5)),  # grayscale image
        (np.zeros((4, 5)), 3, image_to_chw, (3, 4, 5)),  # grayscale repeated for an RGB model
        (np.zeros((4, 5, 3)), 3, image_to_chw, (3, 4, 5)),  # RGB image
        (np.zeros((2, 4, 5)), 1, volume_to_cdhw, (1, 2, 4, 5)),  # grayscale volume
        (np.zeros((2, 4, 5, 3)), 3, volume_to_cdhw, (3, 2, 4, 5)),  # RGB volume (3D ultrasound)
    ],
)
def test_channels_first(array, channels, convert, shape):
    assert convert(array, channels).shape == shape


def test_rgb_slices_keep_their_colors_as_channels():
    volume = np.random.default_rng(1).random((2, 4, 5, 3))
    slices = volume_to_slices(volume, channels=3, stack_slices=1)
    np.testing.assert_array_equal(slices[1, 2], volume[1, :, :, 2])
