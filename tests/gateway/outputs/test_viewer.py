"""``format=viewer``: how many slices are drawn, how large, and in which colours."""

from __future__ import annotations

import pytest

from gateway.outputs.overlay import CLASS_COLOURS
from gateway.outputs.viewer import MAX_PIXELS, MAX_SIDE_PX, MAX_SLICES, class_colour_hex, drawn_size, slice_stride


def test_slices_are_shrunk_to_the_longer_side_keeping_their_aspect_and_never_enlarged() -> None:
    assert drawn_size(1024, 1024) == (MAX_SIDE_PX, MAX_SIDE_PX)
    assert drawn_size(1024, 512) == (512, 256)
    assert drawn_size(128, 96) == (128, 96)


@pytest.mark.parametrize(
    "slices, rows, columns, stride",
    [
        (48, 256, 256, 1),
        (MAX_SLICES, 64, 64, 1),
        (MAX_SLICES + 1, 64, 64, 2),  # over the slice limit: every 2nd
        (2000, 64, 64, 4),
        (300, 512, 512, 2),  # 300 full-size slices are over the pixel budget
        (300, 1024, 1024, 2),  # drawn at 512 x 512: the same budget
    ],
)
def test_the_stride_keeps_an_answer_within_its_slice_and_pixel_bounds(slices: int, rows: int, columns: int, stride: int) -> None:
    assert slice_stride(slices, rows, columns) == stride
    drawn = len(range(0, slices, stride))
    assert drawn <= MAX_SLICES
    assert drawn * drawn_size(rows, columns)[0] * drawn_size(rows, columns)[1] <= MAX_PIXELS


def test_label_colours_are_the_overlays_in_hex() -> None:
    assert class_colour_hex(1) == "#e6194b"
    assert class_colour_hex(1 + len(CLASS_COLOURS)) == class_colour_hex(1)  # they repeat as the overlay's do
