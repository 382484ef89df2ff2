"""DICOM → NIfTI with pydicom alone, independently of medserve's ``preprocessing/``: the input a
third-party NIfTI pipeline (deepbet) would get from a site's own converter.

One enhanced multi-frame file, or a classic single-frame series (one frame per file). Frames
keep their SOURCE order in :attr:`DicomVolume.pixels`: the order they are stored in the enhanced
file, or the instances sorted by Instance Number (0020,0013) for a series. The NIfTI holds them
sorted along the slice normal (row cosine × column cosine), with the affine of DICOM's geometry:
voxel (j, i, k) = column j, row i, k-th slice along the normal, in LPS mm, turned into NIfTI's
RAS by negating x and y.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from pydicom.dataset import Dataset

from .geometry import FrameGeometry, enhanced_geometry, functional_item

LPS_TO_RAS_4 = np.diag([-1.0, -1.0, 1.0, 1.0])
#: how far orientations and spacings may differ between frames of one volume
GEOMETRY_TOLERANCE = 1e-4


@dataclass(frozen=True)
class DicomVolume:
    pixels: np.ndarray  # float32 (frames, rows, columns), modality values, SOURCE order
    geometry: FrameGeometry  # per frame, SOURCE order

    def slice_order(self) -> np.ndarray:
        """Source frame indices sorted along the slice normal: ``pixels[slice_order()]`` is the
        volume in slice order (the order medserve answers masks in)."""
        normal = np.cross(self.geometry.row_cosine[0], self.geometry.column_cosine[0])
        return np.argsort(self.geometry.position_mm @ normal, kind="stable")

    def affine_lps(self) -> np.ndarray:
        """4 × 4 voxel (column, row, slice in slice order) → LPS mm."""
        g, order = self.geometry, self.slice_order()
        cosines = np.hstack([g.row_cosine, g.column_cosine])
        if np.ptp(cosines, axis=0).max() > GEOMETRY_TOLERANCE:
            raise ValueError("frames of differing orientation are not one volume")
        if np.ptp(g.spacing_mm, axis=0).max() > GEOMETRY_TOLERANCE:
            raise ValueError("frames of differing pixel spacing are not one volume")
        first, last = g.position_mm[order[0]], g.position_mm[order[-1]]
        if len(order) > 1:  # the mean step between slices, as the positions say
            step = (last - first) / (len(order) - 1)
        else:  # one slice: its thickness along the normal
            step = np.cross(g.row_cosine[0], g.column_cosine[0]) * g.thickness_mm[0]
        affine = np.eye(4)
        affine[:3, 0] = g.row_cosine[0] * g.spacing_mm[0, 1]
        affine[:3, 1] = g.column_cosine[0] * g.spacing_mm[0, 0]
        affine[:3, 2] = step
        affine[:3, 3] = first
        return affine

    def nifti(self) -> nib.Nifti1Image:
        """The volume as NIfTI: data (columns, rows, slices in slice order), RAS affine."""
        data = np.ascontiguousarray(self.pixels[self.slice_order()].transpose(2, 1, 0))
        return nib.Nifti1Image(data, LPS_TO_RAS_4 @ self.affine_lps())

    def to_source_order(self, nifti_data: np.ndarray) -> np.ndarray:
        """An array on :meth:`nifti`'s grid back to (frames, rows, columns) in SOURCE order."""
        by_slice = np.asarray(nifti_data).transpose(2, 1, 0)
        out = np.empty_like(by_slice)
        out[self.slice_order()] = by_slice
        return out


def _modality(stored: np.ndarray, transform: Dataset) -> np.ndarray:
    slope = float(transform.get("RescaleSlope", 1.0))
    intercept = float(transform.get("RescaleIntercept", 0.0))
    return (stored.astype(np.float32) * np.float32(slope) + np.float32(intercept)).astype(np.float32)


def _read_enhanced(ds: Dataset) -> DicomVolume:
    stored = ds.pixel_array.reshape(int(ds.NumberOfFrames), int(ds.Rows), int(ds.Columns))
    pixels = np.stack([
        _modality(stored[k], functional_item(ds, frame, "PixelValueTransformationSequence"))
        for k, frame in enumerate(ds.PerFrameFunctionalGroupsSequence)
    ])
    return DicomVolume(pixels=pixels, geometry=enhanced_geometry(ds))


def _read_series(datasets: list[Dataset]) -> DicomVolume:
    datasets = sorted(datasets, key=lambda d: int(d.InstanceNumber))
    orientation = np.asarray([d.ImageOrientationPatient for d in datasets], dtype=float)
    geometry = FrameGeometry(
        position_mm=np.asarray([d.ImagePositionPatient for d in datasets], dtype=float),
        row_cosine=orientation[:, :3],
        column_cosine=orientation[:, 3:],
        spacing_mm=np.asarray([d.PixelSpacing for d in datasets], dtype=float),
        thickness_mm=np.asarray([float(d.get("SliceThickness", 0.0) or 0.0) for d in datasets]),
        rows=int(datasets[0].Rows),
        columns=int(datasets[0].Columns),
    )
    return DicomVolume(pixels=np.stack([_modality(d.pixel_array, d) for d in datasets]), geometry=geometry)


def read_volume(dicom_paths: str | Path | Sequence[str | Path]) -> DicomVolume:
    """One enhanced multi-frame file, or the files of one classic single-frame series."""
    paths = [dicom_paths] if isinstance(dicom_paths, (str, Path)) else list(dicom_paths)
    datasets = [pydicom.dcmread(p) for p in paths]
    if len(datasets) == 1 and "PerFrameFunctionalGroupsSequence" in datasets[0]:
        return _read_enhanced(datasets[0])
    if any("PerFrameFunctionalGroupsSequence" in d for d in datasets):
        raise ValueError("give one enhanced file, or the files of one single-frame series")
    if len({d.SeriesInstanceUID for d in datasets}) != 1:
        raise ValueError("the files belong to more than one series")
    return _read_series(datasets)
