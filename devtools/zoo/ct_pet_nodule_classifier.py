"""Two-input CT + PET classifier: does this axial slice hold an FDG-avid lung nodule?

Inputs ``ct`` (lung-windowed CT, 128×128) and ``pet`` (SUVbw windowed to [0, 10], 64×64),
each with its own preprocessing spec. On CT a nodule is a nodule, avid or not; on PET, hot
spots also occur outside the lungs (physiological uptake in soft tissue). The positive class
needs both: a nodule seen on CT that is hot on PET.

PET is synthesized from the same phantom as the CT: an SUV map from tissue class (lung 0.4,
fat 0.5, soft tissue 1.0, bone 1.3), cold (SUV ≈ 1) or avid (SUV 2.5–10) nodules, and
physiological hot spots in soft tissue (SUV 3–8), blurred by a 6 mm FWHM point-spread
function, sampled at 2.8 mm (128×128 over 360 mm) with multiplicative noise, and written in
Bq/ml with a random weight, dose and uptake time, so serving recovers it through SUVbw.

The network upsamples PET to the CT grid inside the graph and runs a MONAI ResNet (widths
64–256) on the two channels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

from devtools.phantoms import chest_slice
from preprocessing import PreprocessingSpec, prepare_slice

from .networks import resnet_classifier
from .training import TrainingResult, TrainingRun, train_classifier

NAME = "ct_pet_nodule_classifier"
LABELS = ("no_avid_nodule", "avid_nodule")
CT_SIZE = (128, 128)
PET_SIZE = (64, 64)
CT_SLICE_SIZE = 256
PET_MATRIX = 128
FIELD_OF_VIEW_MM = 360.0
WIDTHS = (64, 128, 192, 256)
CT_PREPROCESSING = PreprocessingSpec.from_dict(
    {"modalities": ["CT"], "window": {"preset": "lung"}, "output_size": list(CT_SIZE), "layout": "CHW", "dtype": "float32"}
)
PET_PREPROCESSING = PreprocessingSpec.from_dict(
    {
        "modalities": ["PT"],
        "suv": "bw",
        "window": {"center": 5.0, "width": 10.0, "function": "LINEAR_EXACT"},
        "output_size": list(PET_SIZE),
        "layout": "CHW",
        "dtype": "float32",
    }
)
#: SUV by HU of the tissue classes (air, lung, fat, soft tissue, bone), interpolated between.
_TISSUE_HU = [-1000.0, -850.0, -100.0, 40.0, 700.0]
_TISSUE_SUV = [0.0, 0.4, 0.5, 1.0, 1.3]
PSF_FWHM_MM = 6.0  # also smooths away the CT noise the SUV map inherits


@dataclass(frozen=True)
class FusionCase:
    """One patient slice: CT in HU (256×256), PET in SUVbw (128×128), the label, and the
    acquisition facts the PET instance is written with."""

    ct_hu: np.ndarray
    pet_suv: np.ndarray
    label: int
    patient_weight_kg: float
    injected_dose_bq: float
    injection_to_scan_s: float

    @property
    def ct_spacing_mm(self) -> tuple[float, float]:
        return (FIELD_OF_VIEW_MM / CT_SLICE_SIZE,) * 2

    @property
    def pet_spacing_mm(self) -> tuple[float, float]:
        return (FIELD_OF_VIEW_MM / PET_MATRIX,) * 2


class CtPetClassifier(torch.nn.Module):
    """Softmax over a ResNet on [CT, PET upsampled to the CT grid]."""

    def __init__(self, widths: tuple[int, int, int, int] = WIDTHS) -> None:
        super().__init__()
        self.backbone = resnet_classifier(2, len(LABELS), widths)

    def logits(self, ct: torch.Tensor, pet: torch.Tensor) -> torch.Tensor:
        pet_on_ct = torch.nn.functional.interpolate(pet, size=CT_SIZE, mode="bilinear", align_corners=False)
        return self.backbone(torch.cat([ct, pet_on_ct], dim=1))

    def forward(self, ct: torch.Tensor, pet: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(ct, pet), dim=1)


def build_model() -> CtPetClassifier:
    return CtPetClassifier()


def _hot_spot(shape: tuple[int, int], centre: np.ndarray, radius_px: float) -> np.ndarray:
    yy, xx = np.ogrid[0 : shape[0], 0 : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius_px**2


def fusion_case(rng: np.random.Generator, positive: bool) -> FusionCase:
    """A slice whose label is ``positive``: at least one avid nodule, or none avid (0–2 cold
    nodules). Half the slices of either class carry 1–2 physiological hot spots."""
    while True:
        nodules = int(rng.integers(1, 3)) if positive else int(rng.choice([0, 1, 2], p=[0.4, 0.3, 0.3]))
        phantom = chest_slice(rng, size=CT_SLICE_SIZE, nodules=nodules, field_of_view_mm=FIELD_OF_VIEW_MM)
        components, count = ndimage.label(phantom.nodule_mask)
        if count > 0 or not positive:
            break
    mm_per_px = FIELD_OF_VIEW_MM / CT_SLICE_SIZE
    suv = np.interp(phantom.hu, _TISSUE_HU, _TISSUE_SUV).astype(np.float32)
    avid = np.zeros(count, dtype=bool)
    if positive:
        avid = rng.random(count) < 0.5
        avid[rng.integers(count)] = True
    for k in range(count):
        suv[components == k + 1] = rng.uniform(2.5, 10.0) if avid[k] else rng.uniform(0.8, 1.2)
    if rng.random() < 0.5:
        soft_tissue = np.argwhere((phantom.hu > -150) & (phantom.hu < 150) & ~phantom.nodule_mask)
        for _ in range(int(rng.integers(1, 3))):
            centre = soft_tissue[rng.integers(len(soft_tissue))]
            suv[_hot_spot(suv.shape, centre, rng.uniform(4.0, 9.0) / mm_per_px)] = rng.uniform(3.0, 8.0)
    sigma_px = PSF_FWHM_MM / 2.3548 / mm_per_px
    blurred = ndimage.gaussian_filter(suv, sigma_px)
    factor = CT_SLICE_SIZE // PET_MATRIX
    pet = blurred.reshape(PET_MATRIX, factor, PET_MATRIX, factor).mean(axis=(1, 3))
    pet = pet * (1.0 + 0.08 * rng.standard_normal(pet.shape)) + 0.03 * rng.standard_normal(pet.shape)
    return FusionCase(
        ct_hu=phantom.hu,
        pet_suv=np.clip(pet, 0.0, None).astype(np.float32),
        label=int(positive),
        patient_weight_kg=float(rng.uniform(50.0, 110.0)),
        injected_dose_bq=float(rng.uniform(200e6, 400e6)),
        injection_to_scan_s=float(rng.uniform(3000.0, 4500.0)),
    )


def make_dataset(seed: int, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``count`` prepared CT [N, 1, 128, 128] and PET [N, 1, 64, 64] inputs and labels [N];
    odd cases are positive."""
    rng = np.random.default_rng(seed)
    ct = np.empty((count, 1, *CT_SIZE), dtype=np.float32)
    pet = np.empty((count, 1, *PET_SIZE), dtype=np.float32)
    labels = np.empty(count, dtype=np.int64)
    for i in range(count):
        case = fusion_case(rng, positive=i % 2 == 1)
        ct[i] = prepare_slice(case.ct_hu, CT_PREPROCESSING).array
        pet[i] = prepare_slice(case.pet_suv, PET_PREPROCESSING).array
        labels[i] = case.label
    return ct, pet, labels


def train(seed: int = 0, train_count: int = 3000, validation_count: int = 400, epochs: int = 4, log=print) -> TrainingResult:
    """Train from scratch, deterministically for a seed (:func:`.training.train_classifier`)."""
    return train_classifier(
        build_model, make_dataset, TrainingRun(seed, train_count, validation_count, epochs),
        items="CT+PET phantom slices", log=log,
    )
