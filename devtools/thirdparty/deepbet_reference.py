"""deepbet's own pipeline on DICOM: the reference medserve's served brain mask is compared with.

deepbet (PyPI ``deepbet==1.0.2``, MIT licence, University of Münster, Fisch et al. 2024) is a
two-stage cascade of TorchScript networks shipped in its wheel: ``bbox_model.pt`` finds the
brain on a 128³ nearest-exact downsampling of the whole image, ``model.pt`` segments a 256³
nearest-exact resampling of that bounding box (+10 % margin); each stage's input is clipped to
the 0.5/99.5 percentiles of the 128³ image, z-scored and scaled to 0.226·z + 0.449. Its
``BrainExtraction.run`` reorients the NIfTI to the closest canonical (RAS) axes, runs both
stages, thresholds at 0.5, keeps the largest connected component and fills holes inside the box,
and reorients the mask back. We call exactly that method, on CPU with 2 torch threads, on the
NIfTI :mod:`.dicom_nifti` builds from the DICOM with pydicom alone.

Orders: :attr:`DeepbetReference.mask` is on the SOURCE frame grid (frames stored in the
enhanced file, or instances sorted by Instance Number); :meth:`DeepbetReference.mask_in_slice_order`
is sorted along the slice normal, the order medserve answers masks in.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .dicom_nifti import DicomVolume, read_volume

#: deepbet's own default threshold on the brain probability (``run_bet(threshold=.5)``)
THRESHOLD = 0.5
TORCH_THREADS = 2


def deepbet_weights() -> tuple[Path, Path]:
    """(bbox_model.pt, model.pt): the localiser (128³) and the segmenter (256³ on the crop), as
    deepbet itself finds them (``deepbet.utils.DATA_PATH``: the wheel installs them under a
    top-level ``data/models`` beside the package, not inside it)."""
    from deepbet.utils import DATA_PATH

    models = Path(DATA_PATH) / "models"
    return models / "bbox_model.pt", models / "model.pt"


@lru_cache(maxsize=1)
def _brain_extraction():  # noqa: ANN202 - deepbet.bet.BrainExtraction, imported lazily (torch)
    import torch
    from deepbet.bet import BrainExtraction

    torch.set_num_threads(TORCH_THREADS)
    bbox_model, model = deepbet_weights()
    with warnings.catch_warnings():  # deepbet loads with torch.jit.load, which torch 2.13 deprecates
        warnings.simplefilter("ignore", DeprecationWarning)
        return BrainExtraction(no_gpu=True, model_path=str(model), bbox_model_path=str(bbox_model))


@dataclass(frozen=True)
class DeepbetReference:
    volume: DicomVolume
    mask: np.ndarray  # uint8 (frames, rows, columns), SOURCE frame order
    tiv_ml: float  # deepbet's own TIV: voxels × voxel volume, in mL
    bbox: tuple[slice, slice, slice]  # the stage-2 crop on deepbet's canonical (RAS) voxel grid
    seconds: float  # BrainExtraction.run, both stages and post-processing, model loading excluded

    def mask_in_slice_order(self) -> np.ndarray:
        """The mask with frames sorted along the slice normal (medserve's answer order)."""
        return self.mask[self.volume.slice_order()]


def deepbet_reference(dicom_paths: str | Path | Sequence[str | Path]) -> DeepbetReference:
    """Run deepbet's ``BrainExtraction.run`` on the DICOM (one enhanced file or a series)."""
    volume = read_volume(dicom_paths)
    bet = _brain_extraction()
    start = time.perf_counter()
    _, mask_img, tiv = bet.run(volume.nifti(), threshold=THRESHOLD)
    seconds = time.perf_counter() - start
    mask = volume.to_source_order(np.asarray(mask_img.dataobj).astype(np.uint8))
    return DeepbetReference(volume=volume, mask=mask, tiv_ml=float(tiv), bbox=bet.bbox, seconds=seconds)


def deepbet_mask(dicom_paths: str | Path | Sequence[str | Path]) -> np.ndarray:
    """deepbet's brain mask, uint8 (frames, rows, columns) in SOURCE frame order: the frames as
    stored in the enhanced file, or the single-frame instances sorted by Instance Number. Use
    :func:`deepbet_reference` for the slice order along the normal, the TIV and the crop."""
    return deepbet_reference(dicom_paths).mask
