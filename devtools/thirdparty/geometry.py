"""Where the pixels of a DICOM image lie: the per-frame geometry of an enhanced (multi-frame)
image read from its functional groups (per-frame first, then shared), in DICOM's LPS mm."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset


@dataclass(frozen=True)
class FrameGeometry:
    """Where frame ``k``'s pixel (row i, column j) lies, in LPS mm:
    ``position[k] + j · column_spacing · row_cosine + i · row_spacing · column_cosine``."""

    position_mm: np.ndarray  # (frames, 3) LPS, (0020,0032) of each frame
    row_cosine: np.ndarray  # (frames, 3) direction of increasing column index
    column_cosine: np.ndarray  # (frames, 3) direction of increasing row index
    spacing_mm: np.ndarray  # (frames, 2) (0028,0030): between rows, between columns
    thickness_mm: np.ndarray  # (frames,) (0018,0050)
    rows: int
    columns: int

    def voxel_lps(self, k: int) -> np.ndarray:
        """(rows, columns, 3) LPS positions of frame ``k``'s pixel centres, in mm."""
        i = np.arange(self.rows, dtype=float)[:, None, None]
        j = np.arange(self.columns, dtype=float)[None, :, None]
        return (
            self.position_mm[k]
            + j * self.spacing_mm[k, 1] * self.row_cosine[k]
            + i * self.spacing_mm[k, 0] * self.column_cosine[k]
        )

    def centre_lps(self) -> np.ndarray:
        """The centre of the volume (mean of its corner pixel centres), LPS mm."""
        corners = [
            self.voxel_lps(k)[[0, 0, -1, -1], [0, -1, 0, -1]] for k in (0, len(self.position_mm) - 1)
        ]
        return np.concatenate(corners).mean(axis=0)


def functional_item(ds: Dataset, frame: Dataset, sequence: str) -> Dataset:
    """A functional group macro of one frame: per-frame first, then shared; an empty dataset
    when neither has it."""
    for group in (frame, ds.SharedFunctionalGroupsSequence[0]):
        if sequence in group:
            return group[sequence].value[0]
    return Dataset()


def enhanced_geometry(ds: Dataset) -> FrameGeometry:
    """The per-frame geometry of an enhanced (multi-frame) image, from its functional groups."""
    frames = ds.PerFrameFunctionalGroupsSequence
    position, orientation, spacing, thickness = [], [], [], []
    for frame in frames:
        position.append(functional_item(ds, frame, "PlanePositionSequence").ImagePositionPatient)
        orientation.append(functional_item(ds, frame, "PlaneOrientationSequence").ImageOrientationPatient)
        measures = functional_item(ds, frame, "PixelMeasuresSequence")
        spacing.append(measures.PixelSpacing)
        thickness.append(measures.SliceThickness)
    cosines = np.asarray(orientation, dtype=float)
    return FrameGeometry(
        position_mm=np.asarray(position, dtype=float),
        row_cosine=cosines[:, :3],
        column_cosine=cosines[:, 3:],
        spacing_mm=np.asarray(spacing, dtype=float),
        thickness_mm=np.asarray(thickness, dtype=float),
        rows=int(ds.Rows),
        columns=int(ds.Columns),
    )
