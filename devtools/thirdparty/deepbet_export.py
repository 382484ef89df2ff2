"""deepbet as a user would bring it: two export specs (the localiser and the brain model, a
cascade) written beside a validation case, ready for ``medserve export``.

The worked example of the README's "Bring your own model": the specs say in medserve's terms
what deepbet's own code does (see :mod:`.deepbet_reference`): RAS axes without resampling,
PyTorch's nearest-exact resize to 128³ (localiser) and to 256³ (brain model, on the localiser's
box + 10 %), clip to the 0.5/99.5 percentiles of the 128³ image, z-score with the sample std,
0.226·z + 0.449, threshold 0.5, largest connected component, holes filled.

The validation case is the brain MR of :mod:`.brain_mr`; its mask is deepbet's own answer on it,
written as NIfTI on the source grid (no manual ground truth ships in a wheel): export's metric
then says how closely the exported cascade reproduces deepbet, which is what it must do.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import yaml

from .brain_mr import write_brain_mr
from .deepbet_reference import deepbet_reference, deepbet_weights
from .dicom_nifti import LPS_TO_RAS_4

#: deepbet's normalization; the brain model takes its percentiles of the localiser's image.
_STEPS = [
    {"op": "clip_percentiles", "low": 0.5, "high": 99.5},
    {"op": "zscore", "ddof": 1},
    {"op": "scale_shift", "scale": 0.226, "shift": 0.449},
]


def _preprocessing(size: int, of_localiser: bool) -> dict:
    steps = [dict(_STEPS[0], of="localiser") if of_localiser else _STEPS[0], *_STEPS[1:]]
    return {
        "modalities": ["MR"],
        "layout": "CDHW",
        "orientation": "RAS",  # nibabel's closest canonical axes, as deepbet reorients
        "output_size": [size, size, size],
        "resize_mode": "nearest-exact",
        "stats_grid": "output",  # the percentiles of the resized image
        "normalize_steps": steps,
    }


def _spec(name: str, archive: Path, size: int, postprocessing: dict, *, cascade: dict | None = None) -> dict:
    spec = {
        "name": name,
        "task": "segmentation-3d",
        "description": f"deepbet 1.0.2 {'localiser (bbox_model.pt)' if cascade is None else 'brain extraction (model.pt) on the localiser region'}",
        "source": {"kind": "torchscript", "archive": str(archive)},
        "inputs": [{"name": "image", "shape": [-1, 1, size, size, size], "modality": "MR"}],
        "outputs": [{
            "name": "probabilities", "meaning": "segmentation_probabilities", "labels": ["background", "brain"],
            "postprocessing": postprocessing,
        }],
        "preprocessing": _preprocessing(size, of_localiser=cascade is not None),
        "validation": {"dicom_dir": "cases", "manifest": "validation.csv"},
        "precisions": ["fp32"],
        "batching": {"max_batch_size": 1, "max_queue_delay_us": 0},
        # an image unlike the validation case (a blank one above all) is refused, not segmented
        "quality_gate": {"action": "reject"},
    }
    if cascade is not None:
        spec["cascade"] = cascade
    return spec


def write_deepbet_project(folder: str | Path) -> Path:
    """Write the validation case, deepbet's own mask of it and both specs into ``folder``;
    returns the brain model's spec (``medserve export`` of it exports both)."""
    folder = Path(folder)
    (folder / "cases" / "brain").mkdir(parents=True, exist_ok=True)
    dicom = write_brain_mr(folder / "cases" / "brain" / "brain.dcm")
    reference = deepbet_reference(dicom)
    volume = reference.volume
    mask = nib.Nifti1Image(reference.mask_in_slice_order().transpose(2, 1, 0).copy(), LPS_TO_RAS_4 @ volume.affine_lps())
    nib.save(mask, folder / "cases" / "brain_mask.nii.gz")
    (folder / "validation.csv").write_text("image,mask\nbrain,brain_mask.nii.gz\n")
    localiser_archive, model_archive = deepbet_weights()
    localiser = _spec("deepbet_localiser", localiser_archive, 128, {
        "grid": "model",
        "steps": [{"op": "threshold", "label": 1, "probability": 0.5}, {"op": "largest_component", "connectivity": 3}],
    })
    brain = _spec("deepbet", model_archive, 256, {
        "grid": "source",
        "steps": [
            {"op": "threshold", "label": 1, "probability": 0.5},
            {"op": "largest_component", "connectivity": 3},
            {"op": "fill_holes", "connectivity": 1},
        ],
    }, cascade={"localiser": "deepbet_localiser.yaml", "region": {"label": 1, "min_plane_fraction": 0.02, "margin_fraction": 0.1}})
    (folder / "deepbet_localiser.yaml").write_text(yaml.safe_dump(localiser, sort_keys=False))
    (folder / "deepbet.yaml").write_text(yaml.safe_dump(brain, sort_keys=False))
    return folder / "deepbet.yaml"
