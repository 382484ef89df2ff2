"""Findings of a segmentation result: components as scipy labels them (26-connected), volumes,
RECIST-like axes of an ellipsoid of known axes, and modality values under each component as
numpy computes them from the written series."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from scipy import ndimage

from devtools.dicomgen import write_ct_series
from gateway.outputs.findings import HOUNSFIELD, MAX_COMPONENTS_PER_CLASS, find
from preprocessing import plan_series

SPACING = (2.0, 0.8, 0.8)  # slice, row, column mm


def _series(tmp_path, volume_hu):
    paths = write_ct_series(tmp_path, volume_hu.astype(np.float32), spacing_mm=SPACING)
    datasets = [pydicom.dcmread(p) for p in paths]
    plan = plan_series(datasets)
    hu = np.stack([ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept) for ds in datasets])
    return plan, hu


def _ellipsoid(shape, centre, semi_axes_mm, angle_deg=0.0):
    """Voxels inside an ellipsoid with semi-axes (z, long in-plane, short in-plane) in mm, its
    in-plane long axis at ``angle_deg`` from the column axis."""
    zz, yy, xx = np.indices(shape).astype(float)
    z = (zz - centre[0]) * SPACING[0]
    y = (yy - centre[1]) * SPACING[1]
    x = (xx - centre[2]) * SPACING[2]
    a = np.deg2rad(angle_deg)
    u, v = x * np.cos(a) + y * np.sin(a), -x * np.sin(a) + y * np.cos(a)
    return (z / semi_axes_mm[0]) ** 2 + (u / semi_axes_mm[1]) ** 2 + (v / semi_axes_mm[2]) ** 2 <= 1.0


@pytest.fixture(scope="module")
def three_classes(tmp_path_factory):
    """A CT series with a 2-class label map: class 1 has three blobs (two touching only at a
    corner, so one 26-connected component), class 2 one blob and a one-voxel speck."""
    rng = np.random.default_rng(3)
    volume = rng.normal(0.0, 30.0, size=(12, 48, 48)).round()
    labels_map = np.zeros(volume.shape, dtype=np.uint8)
    labels_map[2:6, 5:15, 5:15] = 1
    labels_map[6, 15, 15] = 1  # touches the first blob only at a corner
    labels_map[8:11, 30:34, 30:40] = 1
    labels_map[1:4, 30:40, 5:9] = 2
    labels_map[10, 2, 45] = 2
    volume[labels_map == 2] += 200.0
    plan, hu = _series(tmp_path_factory.mktemp("three"), volume)
    return plan, hu, labels_map


def test_components_are_scipys_26_connected_ones_largest_first(three_classes) -> None:
    plan, _, labels_map = three_classes
    findings = find(labels_map, plan.affine_lps, ["background", "nodule", "vessel"], plan.frames)
    for value in (1, 2):
        reference, count = ndimage.label(labels_map == value, structure=np.ones((3, 3, 3)))
        sizes = sorted(np.bincount(reference.ravel())[1:], reverse=True)
        ours = [f for f in findings if f.label_value == value]
        assert [f.voxels for f in ours] == sizes
        assert [f.component for f in ours] == list(range(1, count + 1))
    assert [(f.label, f.voxels) for f in findings] == [("nodule", 401), ("nodule", 120), ("vessel", 120), ("vessel", 1)]


def test_volume_mean_max_frames_and_centroid_match_numpy(three_classes) -> None:
    plan, hu, labels_map = three_classes
    voxel_ml = SPACING[0] * SPACING[1] * SPACING[2] / 1000
    for finding in find(labels_map, plan.affine_lps, ["background", "nodule", "vessel"], plan.frames):
        reference, _ = ndimage.label(labels_map == finding.label_value, structure=np.ones((3, 3, 3)))
        sizes = np.bincount(reference.ravel())
        sizes[0] = 0
        component = reference == np.flatnonzero(sizes == finding.voxels)[0]
        assert finding.volume_ml == pytest.approx(component.sum() * voxel_ml)
        assert finding.mean == pytest.approx(hu[component].mean())
        assert finding.maximum == pytest.approx(hu[component].max())
        assert finding.unit == HOUNSFIELD
        assert finding.frames == tuple(np.flatnonzero(component.any(axis=(1, 2))))
        centre = plan.affine_lps @ [*np.argwhere(component).mean(axis=0), 1.0]
        np.testing.assert_allclose(finding.centroid_mm, centre[:3])


@pytest.mark.parametrize("angle", [0.0, 30.0])
def test_ellipsoid_axes_are_known_within_a_voxel(tmp_path, angle) -> None:
    shape = (15, 96, 96)
    mask = _ellipsoid(shape, (7, 47.5, 47.5), (9.0, 25.0, 12.0), angle)
    plan, _ = _series(tmp_path, np.zeros(shape))
    (finding,) = find(mask.astype(np.uint8), plan.affine_lps, ["background", "lesion"], plan.frames)
    voxel = np.hypot(SPACING[1], SPACING[2])  # the in-plane voxel diagonal
    assert finding.long_axis_mm == pytest.approx(50.0, abs=voxel)
    assert finding.short_axis_mm == pytest.approx(24.0, abs=voxel)
    assert finding.frames == tuple(np.flatnonzero(mask.any(axis=(1, 2))))


def test_a_single_voxel_has_no_extent(three_classes) -> None:
    plan, _, _ = three_classes
    speck = np.zeros((12, 48, 48), dtype=np.uint8)
    speck[4, 10, 10] = 1
    (finding,) = find(speck, plan.affine_lps, ["background", "nodule"], plan.frames)
    assert (finding.voxels, finding.long_axis_mm, finding.short_axis_mm) == (1, 0.0, 0.0)


def test_components_per_class_are_capped_at_the_largest(three_classes) -> None:
    plan, hu, _ = three_classes
    dots = np.zeros((12, 48, 48), dtype=np.uint8)
    dots[::2, ::2, ::2] = 1  # 6 × 24 × 24 isolated voxels
    dots[0, 0, 0:3] = 1  # one larger component, first
    findings = find(dots, plan.affine_lps, ["background", "nodule"], plan.frames)
    assert len(findings) == MAX_COMPONENTS_PER_CLASS
    assert findings[0].voxels == 3 and all(f.voxels == 1 for f in findings[1:])
    assert findings[1].centroid_mm == pytest.approx(tuple((plan.affine_lps @ [0, 0, 4, 1])[:3]))  # ties: C order
