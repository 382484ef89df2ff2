"""Planes, affines and reorientation: orientation letters, permutations and flips that keep
every voxel where it is in the patient."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.dataset import Dataset

from preprocessing import InvalidDicom
from preprocessing.geometry import (
    axis_codes,
    index_map_affine,
    pixel_spacing_mm,
    plane_geometry,
    reorientation,
)


def _affine(columns, origin=(10.0, -20.0, 30.0)):
    affine = np.eye(4)
    affine[:3, :3] = np.asarray(columns, dtype=float).T
    affine[:3, 3] = origin
    return affine


@pytest.mark.parametrize(
    ("columns", "codes"),
    [
        ([(0, 0, 2.5), (0, 0.7, 0), (0.7, 0, 0)], "SPL"),  # axial DICOM stack: feet→head, rows to posterior, columns to left
        ([(-1, 0, 0), (0, 0, -1), (0, 1, 0)], "RIP"),  # sagittal stack, normal toward the patient's right
        ([(0, 1, 0), (0, 0, -1), (1, 0, 0)], "PIL"),  # coronal stack
        ([(0, 0, -5), (0, 1, 0), (-1, 0, 0)], "IPR"),  # axial head→feet, columns to the right
        ([(0.866, 0.5, 0), (-0.5, 0.866, 0), (0, 0, 1)], "LPS"),  # rotated 30° in plane: closest axes
        ([(0.7071, 0.7071, 0), (-0.7071, 0.7071, 0), (0, 0, 1)], "LPS"),  # 45°: ties broken jointly, never one letter twice
    ],
)
def test_axis_codes(columns, codes):
    assert axis_codes(_affine(columns)) == codes


@pytest.mark.parametrize(
    ("columns", "target"),
    [
        ([(0, 0, 2.5), (0, 0.7, 0), (0.7, 0, 0)], "SPL"),  # identity
        ([(-1, 0, 0), (0, 0, -1), (0, 1, 0)], "SPL"),  # sagittal → axial display
        ([(0, 1, 0), (0, 0, -1), (1, 0, 0)], "SPL"),  # coronal → axial display
        ([(0, 0, 2.5), (0, 0.7, 0), (0.7, 0, 0)], "IAR"),  # every axis flipped
        ([(0, 0, 2.5), (0, 0.7, 0), (0.7, 0, 0)], "LPS"),  # axes reversed in order
    ],
)
def test_reorientation_keeps_every_voxel_in_place(rng, columns, target):
    affine = _affine(columns)
    volume = rng.normal(size=(4, 5, 6))
    turn = reorientation(affine, target)
    moved = turn.apply(volume)
    moved_affine = turn.apply_affine(affine, volume.shape)
    assert axis_codes(moved_affine) == target
    old_index = np.stack(np.meshgrid(*[np.arange(n) for n in volume.shape], indexing="ij"), -1).reshape(-1, 3)
    positions = old_index @ affine[:3, :3].T + affine[:3, 3]
    new_index = np.rint(np.linalg.solve(moved_affine[:3, :3], (positions - moved_affine[:3, 3]).T).T).astype(int)
    np.testing.assert_array_equal(moved[tuple(new_index.T)], volume[tuple(old_index.T)])
    assert turn.is_identity == (target == axis_codes(affine))


def test_index_map_affine_moves_origin_and_scales_the_step():
    affine = _affine([(0, 0, 2), (0, 1, 0), (1, 0, 0)])
    moved = index_map_affine(affine, 0, 3.0, 0.5)
    np.testing.assert_allclose(moved @ [2, 1, 1, 1], affine @ [3 + 2 * 0.5, 1, 1, 1])


class TestPlane:
    def _header(self, **attributes):
        ds = Dataset()
        for keyword, value in attributes.items():
            setattr(ds, keyword, value)
        return ds

    def test_normal_is_row_cross_column(self):
        plane = plane_geometry(self._header(ImagePositionPatient=[1, 2, 3], ImageOrientationPatient=[0, 1, 0, 0, 0, -1]))
        np.testing.assert_allclose(plane.normal, [-1, 0, 0])

    def test_planes_of_one_orientation_share_its_unit_cosines_read_only(self):
        oblique = [0.9, 0.1, 0.0, -0.1, 0.9, 0.2]  # not unit length: scaled as numpy scales it
        first, second = (
            plane_geometry(self._header(ImagePositionPatient=[0, 0, z], ImageOrientationPatient=oblique)) for z in (1, 2)
        )
        np.testing.assert_array_equal(first.row_cosine, np.array(oblique[:3]) / np.linalg.norm(oblique[:3]))
        np.testing.assert_array_equal(first.column_cosine, np.array(oblique[3:]) / np.linalg.norm(oblique[3:]))
        assert first.row_cosine is second.row_cosine and not first.row_cosine.flags.writeable
        assert first.same_orientation(second, 0.0)
        np.testing.assert_array_equal(second.position_mm, [0.0, 0.0, 2.0])

    def test_a_header_without_position_has_no_plane(self):
        assert plane_geometry(self._header(ImageOrientationPatient=[1, 0, 0, 0, 1, 0])) is None

    @pytest.mark.parametrize(
        ("orientation", "pattern"),
        [
            ([1, 0, 0, 1, 0, 0], r"not two orthogonal unit vectors"),  # parallel cosines
            ([0, 0, 0, 0, 1, 0], r"not two orthogonal unit vectors"),  # a zero vector
            ([1, 0, 0, 0, 1], r"\(0020,0037\) 6 values"),  # five values
            ([float("nan"), 0, 0, 0, 1, 0], r"\(0020,0037\) .* must be finite"),  # NaN passed every comparison once
            ([1e308, 0, 0, 0, 1, 0], r"not two orthogonal unit vectors"),  # normalised to 1 before: now refused
            ([1, 0, 0, 0, float("inf"), 0], r"\(0020,0037\) .* must be finite"),
        ],
    )
    def test_malformed_orientation_is_invalid(self, orientation, pattern):
        with pytest.raises(InvalidDicom, match=pattern):
            plane_geometry(self._header(ImagePositionPatient=[0, 0, 0], ImageOrientationPatient=orientation))

    @pytest.mark.parametrize("position", [[float("nan"), 0, 0], [0, 0, float("-inf")], [0, 1e9, 0]])
    def test_position_must_be_finite_and_within_the_extent_limit(self, position):
        with pytest.raises(InvalidDicom, match=r"\(0020,0032\) Image Position \(Patient\) must be finite"):
            plane_geometry(self._header(ImagePositionPatient=position, ImageOrientationPatient=[1, 0, 0, 0, 1, 0]))

    @pytest.mark.parametrize(
        ("attributes", "spacing"),
        [
            ({"PixelSpacing": [0.5, 0.6]}, (0.5, 0.6)),  # CT/MR: (0028,0030)
            ({"ImagerPixelSpacing": [0.15, 0.15]}, (0.15, 0.15)),  # CR/DX: detector spacing
            ({}, None),  # secondary capture: none
        ],
    )
    def test_pixel_spacing(self, attributes, spacing):
        assert pixel_spacing_mm(self._header(**attributes)) == spacing

    @pytest.mark.parametrize(
        "spacing",
        [
            [0, 1],  # zero
            [-1, 1],  # negative
            [float("nan"), 1],  # not a number
            [1, float("inf")],
            [1e6, 1e6],  # a kilometre per pixel: a 128 x 128 image would resample into 10^16 pixels
        ],
    )
    def test_pixel_spacing_must_be_finite_positive_and_sane(self, spacing):
        with pytest.raises(InvalidDicom, match=r"PixelSpacing must be two finite numbers in \(0, 1000\] mm"):
            pixel_spacing_mm(self._header(PixelSpacing=spacing))
