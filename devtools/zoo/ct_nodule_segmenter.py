"""2D chest-CT nodule segmentation: which pixels of an axial slice are lung nodule?

A MONAI U-Net (:class:`~devtools.zoo.networks.UpsampleUNet`, channels 32–256, one residual unit
per level) on phantom slices of a 240 mm field of view written at 256×256 and prepared to
128×128 (1.9 mm pixels) by :func:`preprocessing.prepare_slice`. The exported graph answers
uint8 labels (0 background, 1 nodule) per pixel: the argmax runs inside the model.
"""

from __future__ import annotations


import numpy as np

from devtools.phantoms import SlicePhantom, chest_slice
from preprocessing import PreprocessingSpec, prepare_slice
from preprocessing.resample import resize

from .networks import LabelSegmenter
from .training import TrainingResult, TrainingRun, train_label_segmenter

NAME = "ct_nodule_segmenter"
LABELS = ("background", "nodule")
INPUT_SIZE = (128, 128)
SLICE_SIZE = 256
FIELD_OF_VIEW_MM = 240.0
CHANNELS = (32, 64, 128, 256)
PREPROCESSING = PreprocessingSpec.from_dict(
    {"modalities": ["CT"], "window": {"preset": "lung"}, "output_size": list(INPUT_SIZE), "layout": "CHW", "dtype": "float32"}
)


class NoduleSegmenter(LabelSegmenter):
    """2D nodule U-Net (see :class:`LabelSegmenter`): label maps [N, H, W]."""

    def __init__(self, channels: tuple[int, ...] = CHANNELS) -> None:
        super().__init__(spatial_dims=2, classes=len(LABELS), channels=channels)


def build_model() -> NoduleSegmenter:
    return NoduleSegmenter()


def phantom(rng: np.random.Generator) -> SlicePhantom:
    """One slice with 0–3 nodules (a quarter without any)."""
    return chest_slice(rng, size=SLICE_SIZE, nodules=int(rng.choice([0, 1, 2, 3], p=[0.25, 0.35, 0.25, 0.15])), field_of_view_mm=FIELD_OF_VIEW_MM)


def target_mask(nodule_mask: np.ndarray) -> np.ndarray:
    """The nodule mask in the network's 128×128 geometry: resized like the image (linear,
    pixel edges aligned) and thresholded at half coverage."""
    return (resize(nodule_mask.astype(np.float32), INPUT_SIZE) >= 0.5).astype(np.uint8)


def make_dataset(seed: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` prepared slices [N, 1, 128, 128] and uint8 masks [N, 128, 128]."""
    rng = np.random.default_rng(seed)
    images = np.empty((count, 1, *INPUT_SIZE), dtype=np.float32)
    masks = np.empty((count, *INPUT_SIZE), dtype=np.uint8)
    for i in range(count):
        slice_ = phantom(rng)
        images[i] = prepare_slice(slice_.hu, PREPROCESSING).array
        masks[i] = target_mask(slice_.nodule_mask)
    return images, masks


def train(seed: int = 0, train_count: int = 1200, validation_count: int = 200, epochs: int = 6, log=print) -> TrainingResult:
    """Train from scratch, deterministically for a seed (:func:`.training.train_label_segmenter`;
    nodules cover about 1 % of a slice and a quarter of the slices have none)."""
    return train_label_segmenter(
        build_model, make_dataset, TrainingRun(seed, train_count, validation_count, epochs), classes=len(LABELS),
        batch_size=16, evaluation_batch_size=32, items="phantom slices", log=log,
    )
