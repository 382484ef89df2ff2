"""Output encoders: measurements in physical units, RLE masks, PNG overlays."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from gateway.outputs import rle
from gateway.outputs.measurements import largest_diameter_mm, measure_labels
from gateway.outputs.overlay import heatmap_overlay_png, mask_overlay_png


def _sphere(shape: tuple[int, int, int], centre: tuple[float, float, float], radius_mm: float, spacing: tuple[float, float, float]) -> np.ndarray:
    grids = np.indices(shape).astype(float)
    distance = sum(((g - c) * s) ** 2 for g, c, s in zip(grids, centre, spacing))
    return distance <= radius_mm**2


def _affine(spacing: tuple[float, float, float]) -> np.ndarray:
    return np.diag([*spacing, 1.0])


@pytest.mark.parametrize(
    "spacing",
    [
        (1.0, 1.0, 1.0),  # isotropic
        (2.5, 0.7, 0.7),  # typical CT: thick slices, fine in-plane pixels
    ],
)
def test_sphere_volume_and_diameter_use_real_spacing(spacing) -> None:
    radius = 10.0
    shape = tuple(int(60 / s) for s in spacing)
    sphere = _sphere(shape, tuple(n / 2 for n in shape), radius, spacing)
    [measurement] = measure_labels(sphere.astype(np.uint8), _affine(spacing), ["background", "lesion"])

    assert measurement.label == "lesion"
    assert measurement.components == 1
    assert measurement.volume_ml == pytest.approx(4 / 3 * np.pi * radius**3 / 1000, rel=0.05)
    assert measurement.largest_diameter_mm == pytest.approx(2 * radius, abs=max(spacing) + 0.1)


def test_oblique_affine_measures_in_patient_space() -> None:
    """A segment along the index diagonal is longer in mm when voxels are anisotropic."""
    mask = np.zeros((1, 11, 11), dtype=bool)
    mask[0, np.arange(11), np.arange(11)] = True
    affine = _affine((1.0, 0.5, 2.0))
    assert largest_diameter_mm(mask, affine) == pytest.approx(np.hypot(10 * 0.5, 10 * 2.0))


def test_each_class_and_component_is_counted() -> None:
    labels_map = np.zeros((4, 20, 20), dtype=np.uint8)
    labels_map[1:3, 2:5, 2:5] = 1  # class 1, two components
    labels_map[1:3, 10:12, 10:12] = 1
    labels_map[0, 15:20, 0:1] = 2  # class 2, a 5-voxel line
    result = {m.label: m for m in measure_labels(labels_map, _affine((2.0, 1.0, 1.0)), ["bg", "a", "b"])}
    assert result["a"].components == 2
    assert result["a"].voxels == 2 * 9 + 2 * 4
    assert result["a"].volume_ml == pytest.approx(26 * 2.0 / 1000)
    assert result["b"].largest_diameter_mm == pytest.approx(4.0)


def test_measure_rejects_2d_input() -> None:
    with pytest.raises(ValueError, match=r"\[D, H, W\]"):
        measure_labels(np.zeros((4, 4), np.uint8), np.eye(4), ["bg", "a"])


@pytest.mark.parametrize(
    "mask",
    [
        np.zeros((3, 4), dtype=bool),  # empty
        np.ones((2, 3, 4), dtype=bool),  # full: leading zero-length background run
        np.random.default_rng(0).random((5, 6, 7)) > 0.7,  # random 3D
    ],
)
def test_rle_round_trips(mask: np.ndarray) -> None:
    encoded = rle.encode(mask)
    assert sum(encoded["counts"]) == mask.size
    np.testing.assert_array_equal(rle.decode(encoded), mask)


def test_rle_counts_start_with_background() -> None:
    assert rle.encode(np.array([True, True, False, True]))["counts"] == [0, 2, 1, 1]


def test_mask_overlay_colours_only_the_mask() -> None:
    image = np.full((8, 8), 0.5, dtype=np.float32)
    labels_map = np.zeros((8, 8), dtype=np.uint8)
    labels_map[2:4, 2:4] = 1
    pixels = np.asarray(Image.open(io.BytesIO(mask_overlay_png(image, labels_map))))
    assert pixels.shape == (8, 8, 3)
    assert tuple(pixels[0, 0]) == (127, 127, 127)  # grey, untouched
    red, green, blue = pixels[2, 2].astype(int)
    assert red > green and red > blue  # class 1 is red


def test_heatmap_is_hot_where_activation_is_high() -> None:
    heat = np.zeros((4, 4), dtype=np.float32)
    heat[0, 0] = 1.0
    pixels = np.asarray(Image.open(io.BytesIO(heatmap_overlay_png(np.zeros((4, 4), np.float32), heat)))).astype(int)
    assert pixels[0, 0, 0] > pixels[0, 0, 2]
    assert tuple(pixels[3, 3]) == (0, 0, 0)


def test_diameters_measured_in_bounding_boxes_equal_the_whole_volume() -> None:
    rng = np.random.default_rng(7)
    labels_map = (ndimage.gaussian_filter(rng.normal(size=(12, 40, 40)), 2) > 0.15).astype(np.uint8)
    affine = _affine((2.0, 0.7, 0.7))
    components, count = ndimage.label(labels_map)
    assert count > 3
    whole_volume = max(largest_diameter_mm(components == c, affine) for c in range(1, count + 1))
    [measurement] = measure_labels(labels_map, affine, ["background", "lesion"])
    assert measurement.components == count
    assert measurement.largest_diameter_mm == pytest.approx(round(whole_volume, 2))
