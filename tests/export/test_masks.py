"""Validation masks on the source grid (NIfTI written by nibabel, DICOM SEG written by
highdicom) resampled by export onto the model's grid: against the analytic shape, against
nibabel's own nearest-neighbour resampling, and equal from either format."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pydicom
import pytest

from devtools.testdata import CORONAL_ORIENTATION, ct_series, slice_normal
from export.data import load_validation_set, prepare_input
from export.errors import ExportDataError
from export.masks import read_mask
from export.spec import load_spec
from preprocessing import PreprocessingSpec

PIXEL_SPACING_MM = (0.83, 0.71)  # (between rows, between columns)
SLICE_STEP_MM = 2.3
SHAPE = (14, 60, 64)  # (slices, rows, columns) as sent
ORIGIN_MM = np.array([-20.0, -10.0, 30.0])
CENTRE_MM = np.array([3.0, 5.0, 8.0])  # the sphere's centre (LPS)
RADIUS_MM = 9.0
PREPROCESSING = {"modalities": ["CT"], "window": {"preset": "lung"}, "spacing_mm": [2.0, 2.0, 2.0], "layout": "CDHW", "dtype": "float32"}


def _source_affine_lps() -> np.ndarray:
    """(slice, row, column, 1) of the series as written → LPS mm, from its DICOM geometry."""
    orientation = np.asarray(CORONAL_ORIENTATION, dtype=float)
    affine = np.eye(4)
    affine[:3, 0] = slice_normal(CORONAL_ORIENTATION) * SLICE_STEP_MM
    affine[:3, 1] = orientation[3:] * PIXEL_SPACING_MM[0]  # increasing row: the column cosines
    affine[:3, 2] = orientation[:3] * PIXEL_SPACING_MM[1]
    affine[:3, 3] = ORIGIN_MM
    return affine


def _sphere(affine_lps: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """uint8 1 where a voxel centre of the grid lies within the sphere."""
    index = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1).astype(float)
    points = index @ affine_lps[:3, :3].T + affine_lps[:3, 3]
    return (np.linalg.norm(points - CENTRE_MM, axis=-1) <= RADIUS_MM).astype(np.uint8)


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A coronal CT series with anisotropic voxels, its sphere mask written as NIfTI (x, y, z
    axis order, RAS affine, as dcm2niix writes) and as a DICOM SEG referencing the series."""
    import highdicom as hd
    import nibabel as nib
    from pydicom.sr.codedict import codes

    root = tmp_path_factory.mktemp("mask-case")
    affine = _source_affine_lps()
    mask = _sphere(affine, SHAPE)
    volume = np.where(mask > 0, 40.0, -800.0).astype(np.float32)
    series = root / "series"
    series.mkdir()
    datasets = ct_series(
        volume, pixel_spacing_mm=PIXEL_SPACING_MM, distances_mm=[k * SLICE_STEP_MM for k in range(SHAPE[0])],
        orientation=CORONAL_ORIENTATION, origin_mm=tuple(ORIGIN_MM),
    )
    for i, ds in enumerate(datasets):
        ds.save_as(series / f"IM{i:03d}.dcm", enforce_file_format=True)

    ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine[:, [2, 1, 0, 3]]  # data axes (column, row, slice)
    nib.Nifti1Image(mask.transpose(2, 1, 0).copy(), ras).to_filename(root / "mask.nii.gz")

    by_distance = sorted(
        (pydicom.dcmread(f) for f in series.glob("*.dcm")),
        key=lambda ds: float(np.dot(np.asarray(ds.ImagePositionPatient, float), slice_normal(CORONAL_ORIENTATION))),
    )
    segment = hd.seg.SegmentDescription(
        segment_number=1, segment_label="nodule", segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Nodule, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
    )
    seg = hd.seg.Segmentation(
        source_images=by_distance, pixel_array=mask, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[segment], series_instance_uid=hd.UID(), series_number=99, sop_instance_uid=hd.UID(),
        instance_number=1, manufacturer="test", manufacturer_model_name="test", software_versions="1", device_serial_number="1",
    )
    seg.save_as(root / "mask_seg.dcm")
    array, info = prepare_input(series, PreprocessingSpec.from_dict(PREPROCESSING))
    return {"root": root, "series": series, "array": array, "grid": info.mask_grid, "nifti": root / "mask.nii.gz", "seg": root / "mask_seg.dcm"}


def test_a_nifti_mask_lands_on_the_model_grid(case: dict) -> None:
    grid = case["grid"]
    resampled = read_mask(case["nifti"], grid)

    assert resampled.shape == case["array"].shape[1:] == grid.prepared.shape
    expected = _sphere(grid.prepared.affine_lps, grid.prepared.shape)  # the shape itself, on the model grid
    dice = 2 * np.logical_and(resampled, expected).sum() / (resampled.sum() + expected.sum())
    assert expected.sum() > 300 and dice > 0.9


def test_nearest_neighbour_agrees_with_nibabel(case: dict) -> None:
    import nibabel as nib
    from nibabel.processing import resample_from_to

    grid = case["grid"]
    target_ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ grid.prepared.affine_lps
    reference = resample_from_to(nib.load(case["nifti"]), (grid.prepared.shape, target_ras), order=0, mode="constant", cval=0)
    ours = read_mask(case["nifti"], grid)
    assert (np.asarray(reference.dataobj) != ours).mean() <= 1e-3  # ties at exactly half a voxel may round either way


def test_a_dicom_seg_gives_the_same_labels_as_the_nifti(case: dict) -> None:
    from_seg = read_mask(case["seg"], case["grid"])
    assert from_seg.sum() > 300
    # NIfTI stores its affine in float32: a voxel centre within ~1e-6 of a half-voxel tie may round the other way
    assert (from_seg != read_mask(case["nifti"], case["grid"])).mean() <= 1e-3


def test_a_seg_of_another_series_is_refused(case: dict) -> None:
    from dataclasses import replace

    other = replace(case["grid"], series_uid="1.2.3.4")
    with pytest.raises(ExportDataError, match=r"mask_seg.dcm: the SEG does not reference the case's series"):
        read_mask(case["seg"], other)


def test_a_source_grid_mask_needs_a_volumetric_input(case: dict) -> None:
    with pytest.raises(ExportDataError, match=r"mask.nii.gz: a mask on the source grid \(NIfTI, DICOM SEG\) needs a volumetric input"):
        read_mask(case["nifti"], None)


def test_the_validation_manifest_takes_nifti_seg_and_npy_masks(case: dict, write_spec) -> None:
    root, shape = case["root"], list(case["array"].shape)
    np.save(root / "mask.npy", read_mask(case["nifti"], case["grid"]))
    with open(root / "manifest.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["volume", "mask"])
        writer.writeheader()
        writer.writerows([{"volume": "series", "mask": name} for name in ("mask.nii.gz", "mask_seg.dcm", "mask.npy")])
    spec = load_spec(write_spec({
        "name": "seg3d", "task": "segmentation-3d", "precisions": ["fp32"],
        "source": {"kind": "python", "factory": "devtools.zoo.ct_nodule_segmenter_3d:build_model", "state_dict": "w.pt"},
        "inputs": [{"name": "volume", "shape": [-1, *shape]}],
        "outputs": [{"name": "labels", "meaning": "segmentation_labels", "labels": ["background", "nodule"], "dtype": "uint8"}],
        "preprocessing": PREPROCESSING | {"output_size": shape[1:]},
        "validation": {"dicom_dir": str(root), "manifest": str(root / "manifest.csv")},
    }))
    prepared = load_validation_set(spec)

    assert prepared.masks is not None and prepared.masks.shape == (3, *shape[1:])
    np.testing.assert_array_equal(prepared.masks[0], prepared.masks[2])  # the .npy is the NIfTI's, resampled
    assert (prepared.masks[0] != prepared.masks[1]).mean() <= 1e-3

