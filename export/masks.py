"""Validation masks → label maps on the model's grid.

A segmentation case's mask may be given

- as ``.npy``: already a label map on the model's output grid (used as it is);
- on the *source* grid, as the annotation tools write it: NIfTI (``.nii`` / ``.nii.gz``, its
  affine locating the voxels) or DICOM SEG (its frames referencing the case's source series).
  Export resamples it onto the prepared volume's grid (:class:`preprocessing.VolumeGeometry`)
  by nearest neighbour through the two affines: every model voxel takes the label of the
  source voxel its centre falls in (``scipy.ndimage.map_coordinates``, order 0); outside the
  mask's volume is background. Labels are never interpolated.

For a segmentation model the output grid is the prepared input's grid (same spatial shape);
SEG segment number *n* is label *n* (the spec's ``labels[n]``), as the gateway writes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom

from preprocessing import VolumeGeometry

from .errors import ExportDataError

__all__ = ["LabelVolume", "MaskGrid", "is_source_grid_mask", "nifti_labels", "read_mask", "resample_labels", "seg_labels"]

#: NIfTI's RAS+ world to DICOM's LPS+: the first two axes change sign.
RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])

#: Slices planned per resampling pass: bounds the coordinate arrays (3 × float64 per voxel).
SLAB = 16


@dataclass(frozen=True)
class LabelVolume:
    """Labels on some grid: ``affine_lps`` maps the array's (i, j, k, 1) to LPS mm."""

    labels: np.ndarray
    affine_lps: np.ndarray


@dataclass(frozen=True)
class MaskGrid:
    """Where a case's mask must land and what its source is: the prepared volume's geometry,
    the source series' geometry (as sent, sorted along the normal) and its Series Instance UID."""

    prepared: VolumeGeometry
    source: VolumeGeometry
    series_uid: str


def is_source_grid_mask(path: Path) -> bool:
    """True for a mask file export resamples (NIfTI or DICOM SEG), False for ``.npy``."""
    return path.suffix.lower() != ".npy"


def read_mask(path: Path, grid: MaskGrid | None) -> np.ndarray:
    """The case's mask as uint8 labels on the model grid; ``grid`` None (a 2D input) takes
    ``.npy`` masks only."""
    if not is_source_grid_mask(path):
        try:
            return np.load(path).astype(np.uint8)
        except (OSError, ValueError) as exc:
            raise ExportDataError(f"{path}: not a readable .npy mask: {exc}") from exc
    if grid is None:
        raise ExportDataError(f"{path}: a mask on the source grid (NIfTI, DICOM SEG) needs a volumetric input; give a .npy on the model grid")
    name = path.name.lower()
    volume = nifti_labels(path) if name.endswith((".nii", ".nii.gz")) else seg_labels(path, grid)
    return resample_labels(volume, grid.prepared)


def nifti_labels(path: Path) -> LabelVolume:
    """A NIfTI label image and its affine, in LPS (nibabel's ``affine`` is RAS+)."""
    try:
        import nibabel as nib
    except ImportError as exc:  # not among the export extra's own dependencies yet
        raise ExportDataError(f"{path}: reading a NIfTI mask needs nibabel (pip install 'nibabel>=5.2')") from exc

    try:
        image = nib.load(str(path))
        data = np.asanyarray(image.dataobj)
    except Exception as exc:  # nibabel raises several unrelated types for a bad file
        raise ExportDataError(f"{path}: not a readable NIfTI mask ({type(exc).__name__})") from exc
    data = data.reshape(data.shape[:3]) if data.ndim > 3 and all(d == 1 for d in data.shape[3:]) else data
    if data.ndim != 3:
        raise ExportDataError(f"{path}: a NIfTI mask must be a 3D label image, it has shape {list(data.shape)}")
    if not np.array_equal(data, np.round(data)) or data.min(initial=0) < 0 or data.max(initial=0) > 255:
        raise ExportDataError(f"{path}: a NIfTI mask must hold integer labels 0..255")
    return LabelVolume(data.astype(np.uint8), RAS_TO_LPS @ image.affine)


def _functional_item(ds: pydicom.Dataset, index: int, keyword: str) -> pydicom.Dataset:
    """The ``keyword`` item of frame ``index``'s functional groups: per-frame, else shared."""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame and index < len(per_frame) and keyword in per_frame[index]:
        return per_frame[index][keyword][0]
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared and keyword in shared[0]:
        return shared[0][keyword][0]
    raise ExportDataError(f"the DICOM SEG lacks {keyword} for frame {index + 1}")


def _in_plane_axes(geometry: VolumeGeometry) -> np.ndarray:
    """Unit vectors of the row (h) and column (w) index axes of ``geometry``, in LPS."""
    axes = geometry.affine_lps[:3, 1:3].T
    return axes / np.linalg.norm(axes, axis=1, keepdims=True)


def seg_labels(path: Path, grid: MaskGrid) -> LabelVolume:
    """A DICOM SEG's segments painted onto the source series' grid: each frame lands on the
    source slice its Image Position (Patient) lies on, segment number *n* as label *n*. The SEG
    must reference the case's series and lie on its in-plane grid."""
    try:
        ds = pydicom.dcmread(path)
        frames = ds.pixel_array
    except Exception as exc:  # pydicom raises several unrelated types for a bad file
        raise ExportDataError(f"{path}: not a readable DICOM SEG ({type(exc).__name__})") from exc
    if str(ds.get("Modality", "")) != "SEG":
        raise ExportDataError(f"{path}: a DICOM mask must be a Segmentation (Modality SEG)")
    referenced = {str(item.get("SeriesInstanceUID", "")) for item in ds.get("ReferencedSeriesSequence", [])}
    if grid.series_uid not in referenced:
        raise ExportDataError(f"{path}: the SEG does not reference the case's series")
    frames = frames.reshape(-1, *frames.shape[-2:])
    source = grid.source
    if frames.shape[1:] != source.shape[1:]:
        raise ExportDataError(f"{path}: SEG frames are {list(frames.shape[1:])} pixels, the source slices {list(source.shape[1:])}")
    to_index = np.linalg.inv(source.affine_lps)
    in_plane = _in_plane_axes(source)  # (increasing row, increasing column) = IOP's (column, row) cosines
    labels = np.zeros(source.shape, dtype=np.uint8)
    for index, frame in enumerate(frames):
        orientation = np.array([float(v) for v in _functional_item(ds, index, "PlaneOrientationSequence").ImageOrientationPatient])
        if not np.allclose(orientation.reshape(2, 3)[::-1], in_plane, atol=1e-3):
            raise ExportDataError(f"{path}: SEG frame {index + 1} is not in the plane of the case's series")
        position = [float(v) for v in _functional_item(ds, index, "PlanePositionSequence").ImagePositionPatient]
        segment = int(_functional_item(ds, index, "SegmentIdentificationSequence").ReferencedSegmentNumber)
        slice_index, row, column = (to_index @ np.array([*position, 1.0]))[:3]
        k = int(round(slice_index))
        if not (abs(slice_index - k) < 0.1 and abs(row) < 0.1 and abs(column) < 0.1 and 0 <= k < source.shape[0]):
            raise ExportDataError(f"{path}: SEG frame {index + 1} does not lie on a slice of the case's series")
        labels[k][frame > 0] = segment
    return LabelVolume(labels, source.affine_lps)


def resample_labels(volume: LabelVolume, target: VolumeGeometry) -> np.ndarray:
    """``volume``'s labels at the centres of ``target``'s voxels (nearest neighbour; outside
    the volume: 0), as uint8 of ``target.shape``."""
    from scipy.ndimage import map_coordinates

    to_source = np.linalg.inv(volume.affine_lps) @ target.affine_lps
    depth, rows, columns = target.shape
    out = np.empty(target.shape, dtype=np.uint8)
    j, k = np.meshgrid(np.arange(rows, dtype=np.float64), np.arange(columns, dtype=np.float64), indexing="ij")
    for start in range(0, depth, SLAB):
        i = np.arange(start, min(start + SLAB, depth), dtype=np.float64)[:, None, None]
        index = np.stack([np.broadcast_to(i, (len(i), rows, columns)), np.broadcast_to(j, (len(i), rows, columns)),
                          np.broadcast_to(k, (len(i), rows, columns)), np.ones((len(i), rows, columns))])
        coordinates = np.tensordot(to_source[:3], index, axes=1)
        out[start : start + len(i)] = map_coordinates(volume.labels, coordinates, order=0, mode="constant", cval=0)
    return out
