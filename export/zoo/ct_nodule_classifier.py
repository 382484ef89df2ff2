"""2D chest-CT slice classifier: does this axial slice contain a lung nodule?

Trained on synthetic chest-CT phantoms (:mod:`medserve.phantoms`) rendered to DICOM-like HU
slices and prepared by the very same :func:`preprocessing.prepare_slice` the gateway uses, with
the preprocessing spec stored next to the weights, so training and serving cannot disagree.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from monai.networks.nets import ResNet

from export.metrics import roc_auc
from medserve.phantoms import chest_slice
from preprocessing import PreprocessingSpec, prepare_slice

NAME = "ct_nodule_classifier"
LABELS = ("no_nodule", "nodule")
INPUT_SIZE = (128, 128)
PREPROCESSING = PreprocessingSpec.from_dict(
    {
        "modalities": ["CT"],
        "window": {"preset": "lung"},
        "output_size": list(INPUT_SIZE),
        "layout": "CHW",
        "dtype": "float32",
    }
)


class NoduleClassifier(torch.nn.Module):
    """MONAI ResNet (basic blocks, one per stage) with a softmax head, so the exported graph
    answers class probabilities directly."""

    def __init__(self, widths: tuple[int, int, int, int] = (16, 32, 64, 128)) -> None:
        super().__init__()
        self.backbone = ResNet(
            block="basic",
            layers=[1, 1, 1, 1],
            block_inplanes=list(widths),
            spatial_dims=2,
            n_input_channels=1,
            num_classes=len(LABELS),
            conv1_t_size=7,
            conv1_t_stride=2,
        )

    def logits(self, image: torch.Tensor) -> torch.Tensor:
        return self.backbone(image)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.backbone(image), dim=1)


def build_model() -> NoduleClassifier:
    return NoduleClassifier()


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


@dataclass(frozen=True)
class TrainingResult:
    state_dict: dict[str, torch.Tensor]
    metrics: dict[str, float | int | str]


def train(
    seed: int = 0,
    train_count: int = 4000,
    validation_count: int = 400,
    epochs: int = 14,
    batch_size: int = 32,
    log=print,
) -> TrainingResult:
    """Train from scratch, deterministically for a given seed, and report validation AUC.

    Validation phantoms come from a different seed stream than the training ones.
    """
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    started = time.perf_counter()
    x_train, y_train = make_dataset(seed * 2 + 1, train_count)
    x_val, y_val = make_dataset(seed * 2 + 2, validation_count)
    log(f"generated {train_count}+{validation_count} phantom slices in {time.perf_counter() - started:.1f}s")

    model = build_model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    steps_per_epoch = int(np.ceil(train_count / batch_size))
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=epochs * steps_per_epoch)
    order_rng = np.random.default_rng(seed)
    x_train_t, y_train_t = torch.from_numpy(x_train), torch.from_numpy(y_train)
    for epoch in range(epochs):
        model.train()
        order = torch.from_numpy(order_rng.permutation(train_count))
        total = 0.0
        for step in range(steps_per_epoch):
            idx = order[step * batch_size : (step + 1) * batch_size]
            batch = x_train_t[idx]
            if order_rng.random() < 0.5:
                batch = torch.flip(batch, dims=[3])
            loss = torch.nn.functional.cross_entropy(model.logits(batch), y_train_t[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += float(loss.detach()) * len(idx)
        auc = evaluate_auc(model, x_val, y_val)
        log(f"epoch {epoch + 1}/{epochs}: train loss {total / train_count:.4f}, validation AUC {auc:.4f}")

    auc = evaluate_auc(model, x_val, y_val)
    metrics = {
        "seed": seed,
        "train_count": train_count,
        "validation_count": validation_count,
        "epochs": epochs,
        "validation_auc": round(auc, 6),
        "training_seconds": round(time.perf_counter() - started, 1),
        "torch_version": torch.__version__,
    }
    return TrainingResult(state_dict=model.state_dict(), metrics=metrics)


@torch.no_grad()
def evaluate_auc(model: NoduleClassifier, images: np.ndarray, labels: np.ndarray) -> float:
    model.eval()
    probabilities = torch.cat([model(torch.from_numpy(images[i : i + 64])) for i in range(0, len(images), 64)])
    return roc_auc(labels, probabilities[:, 1].numpy())
