"""``format=nifti``: NIfTI-1 label maps (nibabel) with the patient affine, as dcm2niix orders them."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np

from .encoder import SEGMENTATION_TASKS, Answer, Binary, output_format

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def nifti_labels(labels_map: np.ndarray, affine_lps: np.ndarray) -> bytes:
    """Gzipped NIfTI-1 of a [D, H, W] label map whose ``affine_lps`` maps (d, h, w, 1) → LPS mm.

    Stored with array axes (column, row, slice) and a RAS affine, the layout other tools
    (dcm2niix, ITK-SNAP, 3D Slicer) expect.
    """
    data = np.ascontiguousarray(np.transpose(labels_map, (2, 1, 0)), dtype=np.uint8)
    affine_ras = LPS_TO_RAS @ affine_lps[:, [2, 1, 0, 3]]
    image = nib.Nifti1Image(data, affine_ras)
    image.header.set_xyzt_units("mm")
    image.header.set_intent("label", name="medserve")
    image.set_qform(affine_ras, code=1)
    image.set_sform(affine_ras, code=1)
    return gzip.compress(image.to_bytes(), compresslevel=6)


@output_format("nifti", "application/gzip", accept=("application/gzip", "application/x-nifti"), tasks=SEGMENTATION_TASKS)
def encoder(answer: Answer) -> Binary:
    """`.nii.gz` label map with the patient affine (RAS), as dcm2niix orders axes"""
    content = nifti_labels(answer.result.labels_map, answer.result.affine_lps)
    return Binary.attachment(content, f"{answer.card.name}.nii.gz")
