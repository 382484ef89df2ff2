"""3D chest-CT nodule segmentation: which voxels of a CT series are lung nodule?

A MONAI U-Net in 3D (:class:`~devtools.zoo.networks.UpsampleUNet`, channels 16–128, one
residual unit per level) that takes patches of 32×96×96 voxels of 2 mm. Its preprocessing
resamples any series to 2 mm voxels (``spacing_mm``) and leaves the size open, so nodules keep
their physical size and the gateway tiles a larger volume with a sliding window of the patch
size. Trained on phantom series of exactly one patch (:func:`devtools.phantoms.chest_volume`,
32 slices of 96×96 over a 192 mm field of view), prepared by the same
:func:`preprocessing.preprocess_series` as served ones, from in-memory DICOM. The exported
graph answers uint8 labels per voxel: 1 byte instead of 2×4 bytes of probabilities.
"""

from __future__ import annotations


import numpy as np

from devtools.phantoms import chest_volume
from preprocessing import PreprocessingSpec, preprocess_series

from .dicom import ct_series
from .networks import LabelSegmenter
from .training import TrainingResult, TrainingRun, train_label_segmenter

NAME = "ct_nodule_segmenter_3d"
LABELS = ("background", "nodule")
VOLUME_SHAPE = (32, 96, 96)
SPACING_MM = (2.0, 2.0, 2.0)
CHANNELS = (16, 32, 64, 128)
PREPROCESSING = PreprocessingSpec.from_dict(
    {"modalities": ["CT"], "window": {"preset": "lung"}, "spacing_mm": list(SPACING_MM), "layout": "CDHW", "dtype": "float32"}
)


class NoduleSegmenter3D(LabelSegmenter):
    """3D nodule U-Net (see :class:`LabelSegmenter`): label maps [N, D, H, W]."""

    def __init__(self, channels: tuple[int, ...] = CHANNELS) -> None:
        super().__init__(spatial_dims=3, classes=len(LABELS), channels=channels)


def build_model() -> NoduleSegmenter3D:
    return NoduleSegmenter3D()


def phantom(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A (32, 96, 96) HU volume with 0–3 spherical nodules and its uint8 mask."""
    nodules = int(rng.choice([0, 1, 2, 3], p=[0.2, 0.35, 0.3, 0.15]))
    volume, mask = chest_volume(rng, slices=VOLUME_SHAPE[0], size=VOLUME_SHAPE[1], nodules=nodules, field_of_view_mm=VOLUME_SHAPE[1] * SPACING_MM[1])
    return volume, mask.astype(np.uint8)


def make_dataset(seed: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` prepared volumes [N, 1, 32, 96, 96] and masks [N, 32, 96, 96]."""
    rng = np.random.default_rng(seed)
    volumes = np.empty((count, 1, *VOLUME_SHAPE), dtype=np.float32)
    masks = np.empty((count, *VOLUME_SHAPE), dtype=np.uint8)
    for i in range(count):
        volume, masks[i] = phantom(rng)
        volumes[i] = preprocess_series(ct_series(volume, SPACING_MM), PREPROCESSING).array
    return volumes, masks


def train(seed: int = 0, train_count: int = 200, validation_count: int = 32, epochs: int = 10, log=print) -> TrainingResult:
    """Train from scratch, deterministically for a seed (:func:`.training.train_label_segmenter`)."""
    return train_label_segmenter(
        build_model, make_dataset, TrainingRun(seed, train_count, validation_count, epochs), classes=len(LABELS),
        batch_size=4, evaluation_batch_size=4, items="phantom series", log=log,
    )
