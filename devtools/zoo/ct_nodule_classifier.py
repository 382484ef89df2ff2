"""2D chest-CT slice classifier: does this axial slice contain a lung nodule?

Trained on synthetic chest-CT phantoms (:mod:`devtools.phantoms`) prepared by the very same
:func:`preprocessing.prepare_slice` the gateway uses, with the preprocessing spec of its export
spec, so training and serving cannot disagree.

Widths 64–256 (MONAI ResNet, one block per stage): wide enough that INT8 convolutions pay off
on CPU (about 3× FP32 throughput in onnxruntime), 7.9 MB of FP32 weights.
"""

from __future__ import annotations

import numpy as np
import torch

from devtools.phantoms import chest_slice
from preprocessing import PreprocessingSpec, prepare_slice

from .networks import resnet_classifier
from .training import TrainingResult, TrainingRun, train_classifier

NAME = "ct_nodule_classifier"
LABELS = ("no_nodule", "nodule")
INPUT_SIZE = (128, 128)
WIDTHS = (64, 128, 192, 256)
PREPROCESSING = PreprocessingSpec.from_dict(
    {"modalities": ["CT"], "window": {"preset": "lung"}, "output_size": list(INPUT_SIZE), "layout": "CHW", "dtype": "float32"}
)


class NoduleClassifier(torch.nn.Module):
    """MONAI ResNet with a softmax head, so the exported graph answers class probabilities."""

    def __init__(self, widths: tuple[int, int, int, int] = WIDTHS) -> None:
        super().__init__()
        self.backbone = resnet_classifier(1, len(LABELS), widths)

    def logits(self, image: torch.Tensor) -> torch.Tensor:
        return self.backbone(image)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.backbone(image), dim=1)


def build_model() -> NoduleClassifier:
    return NoduleClassifier()


class NoduleClassifierWithActivationMap(NoduleClassifier):
    """The same network and weights, also answering a class-activation map (CAM, Zhou et al.
    2016) of the ``nodule`` class: the last stage's features weighted by the head's evidence for
    nodule over no-nodule, rectified and scaled to [0, 1] per image. [N, 4, 4] for a 128² input
    (stride 32); the gateway upsamples it over the source image for a person to look at."""

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        net = self.backbone
        features = net.act(net.bn1(net.conv1(image)))
        if not net.no_max_pool:
            features = net.maxpool(features)
        features = net.layer4(net.layer3(net.layer2(net.layer1(features))))
        probabilities = torch.softmax(net.fc(net.avgpool(features).flatten(1)), dim=1)
        evidence = net.fc.weight[LABELS.index("nodule")] - net.fc.weight[LABELS.index("no_nodule")]
        activation = torch.relu(torch.einsum("c,nchw->nhw", evidence, features))
        activation = activation / (activation.amax(dim=(1, 2), keepdim=True) + 1e-6)
        return probabilities, activation


def build_model_with_activation_map() -> NoduleClassifierWithActivationMap:
    return NoduleClassifierWithActivationMap()


def make_dataset(seed: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` prepared slices [N, 1, 128, 128] and labels [N]; half contain 1–2 nodules."""
    rng = np.random.default_rng(seed)
    images = np.empty((count, 1, *INPUT_SIZE), dtype=np.float32)
    labels = np.empty(count, dtype=np.int64)
    for i in range(count):
        positive = i % 2 == 1
        phantom = chest_slice(rng, size=256, nodules=int(rng.integers(1, 3)) if positive else 0)
        images[i] = prepare_slice(phantom.hu, PREPROCESSING).array
        labels[i] = int(phantom.has_nodule)
    return images, labels


def train(seed: int = 0, train_count: int = 3000, validation_count: int = 400, epochs: int = 4, log=print) -> TrainingResult:
    """Train from scratch, deterministically for a seed (:func:`.training.train_classifier`)."""
    return train_classifier(
        build_model, make_dataset, TrainingRun(seed, train_count, validation_count, epochs),
        items="phantom slices", log=log,
    )
