"""The training loop every zoo model shares: seeded, deterministic, AdamW with a one-cycle
learning rate, left–right flips as augmentation, and a validation score after each epoch."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch
from monai.losses import DiceCELoss

from export.metrics import dice, roc_auc

__all__ = ["TrainingResult", "TrainingRun", "fit", "predict", "seed_everything", "train_classifier", "train_from_scratch", "train_label_segmenter", "training_result"]

Loss = Callable[[torch.nn.Module, list[torch.Tensor], torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class TrainingRun:
    """The size of one training run: the seed the weights and the phantoms follow from, the
    number of training and validation samples, and the epochs. Written into the metrics JSON."""

    seed: int
    train_count: int
    validation_count: int
    epochs: int


@dataclass(frozen=True)
class TrainingResult:
    state_dict: dict[str, torch.Tensor]
    metrics: dict[str, float | int | str]


def seed_everything(seed: int) -> None:
    """Same seed, same weights: seeded torch and deterministic kernels (CPU)."""
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)


def fit(
    model: torch.nn.Module,
    inputs: list[np.ndarray],
    targets: np.ndarray,
    loss: Loss,
    *,
    epochs: int,
    batch_size: int,
    max_lr: float,
    seed: int,
    spatial_targets: bool,
    evaluate: Callable[[], float],
    log: Callable[[str], None] = print,
) -> float:
    """Train ``model`` in place and return the last validation score.

    ``inputs`` are [N, C, ...] arrays (one per model input), ``targets`` [N] labels or
    [N, ...] masks; with ``spatial_targets`` the masks are flipped with the images.
    """
    count = len(targets)
    steps_per_epoch = int(np.ceil(count / batch_size))
    optimizer = torch.optim.AdamW(model.parameters(), lr=max_lr, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, total_steps=epochs * steps_per_epoch)
    rng = np.random.default_rng(seed)
    tensors = [torch.from_numpy(x) for x in inputs]
    target = torch.from_numpy(targets)
    score = float("nan")
    for epoch in range(epochs):
        started = time.perf_counter()
        model.train()
        order = torch.from_numpy(rng.permutation(count))
        total = 0.0
        for step in range(steps_per_epoch):
            index = order[step * batch_size : (step + 1) * batch_size]
            batch, y = [t[index] for t in tensors], target[index]
            if rng.random() < 0.5:
                batch = [torch.flip(b, dims=[-1]) for b in batch]
                y = torch.flip(y, dims=[-1]) if spatial_targets else y
            value = loss(model, batch, y)
            optimizer.zero_grad()
            value.backward()
            optimizer.step()
            scheduler.step()
            total += float(value.detach()) * len(index)
        score = evaluate()
        log(f"epoch {epoch + 1}/{epochs}: train loss {total / count:.4f}, validation {score:.4f} ({time.perf_counter() - started:.0f}s)")
    return score


def training_result(model: torch.nn.Module, run: TrainingRun, *, metric_name: str, metric: float, started: float) -> TrainingResult:
    """The trained weights and the metrics JSON committed beside them (``started`` is a
    ``time.perf_counter()`` reading taken before data generation)."""
    return TrainingResult(
        state_dict=model.state_dict(),
        metrics={
            **asdict(run),
            f"validation_{metric_name}": round(metric, 6),
            "training_seconds": round(time.perf_counter() - started, 1),
            "torch_version": torch.__version__,
        },
    )


@torch.no_grad()
def predict(model: torch.nn.Module, inputs: list[np.ndarray], batch_size: int) -> torch.Tensor:
    """``model``'s outputs over ``inputs`` (one [N, ...] array per model input), in eval mode
    and in batches of ``batch_size``."""
    model.eval()
    count = len(inputs[0])
    return torch.cat([model(*(torch.from_numpy(x[i : i + batch_size]) for x in inputs)) for i in range(0, count, batch_size)])


def train_from_scratch(
    build_model: Callable[[], torch.nn.Module],
    make_dataset: Callable[[int, int], tuple[np.ndarray, ...]],
    loss: Loss,
    evaluate: Callable[[torch.nn.Module, list[np.ndarray], np.ndarray], float],
    run: TrainingRun,
    *,
    metric_name: str,
    spatial_targets: bool,
    batch_size: int,
    items: str,
    log: Callable[[str], None],
) -> TrainingResult:
    """Train a new ``build_model()`` with :func:`fit`, deterministically for ``run.seed``.

    ``make_dataset(seed, count)`` answers the model's input arrays then the targets; the
    validation samples come from another seed than the training ones. ``evaluate(model,
    inputs, targets)`` scores the validation set (``metric_name`` in the metrics JSON);
    ``items`` names the samples in the log ("phantom slices").
    """
    seed_everything(run.seed)
    started = time.perf_counter()
    *x_train, y_train = make_dataset(run.seed * 2 + 1, run.train_count)
    *x_val, y_val = make_dataset(run.seed * 2 + 2, run.validation_count)
    log(f"generated {run.train_count}+{run.validation_count} {items} in {time.perf_counter() - started:.1f}s")
    model = build_model()
    score = fit(
        model, x_train, y_train, loss, epochs=run.epochs, batch_size=batch_size, max_lr=3e-3, seed=run.seed,
        spatial_targets=spatial_targets, evaluate=lambda: evaluate(model, x_val, y_val), log=log,
    )
    return training_result(model, run, metric_name=metric_name, metric=score, started=started)


def train_classifier(
    build_model: Callable[[], torch.nn.Module],
    make_dataset: Callable[[int, int], tuple[np.ndarray, ...]],
    run: TrainingRun,
    *,
    items: str,
    log: Callable[[str], None],
) -> TrainingResult:
    """Train a classifier (``logits(*inputs)`` for the loss, class probabilities from
    ``forward``) with cross-entropy, batches of 32, scored by the ROC AUC of class 1."""

    def evaluate_auc(model: torch.nn.Module, inputs: list[np.ndarray], labels: np.ndarray) -> float:
        return roc_auc(labels, predict(model, inputs, 64)[:, 1].numpy())

    return train_from_scratch(
        build_model, make_dataset, lambda m, batch, y: torch.nn.functional.cross_entropy(m.logits(*batch), y), evaluate_auc,
        run, metric_name="auc", spatial_targets=False, batch_size=32, items=items, log=log,
    )


def train_label_segmenter(
    build_model: Callable[[], torch.nn.Module],
    make_dataset: Callable[[int, int], tuple[np.ndarray, np.ndarray]],
    run: TrainingRun,
    *,
    classes: int,
    batch_size: int,
    evaluation_batch_size: int,
    items: str,
    log: Callable[[str], None],
) -> TrainingResult:
    """Train a ``LabelSegmenter`` with cross-entropy + a foreground Dice over the whole batch,
    scored by the foreground Dice. Nodules fill about 1 % of a slice and well under 1 % of a
    volume, and many samples hold none: a Dice that counted the background, or was averaged
    per sample, would teach the network to answer background everywhere."""
    criterion = DiceCELoss(to_onehot_y=True, softmax=True, include_background=False, batch=True)

    def evaluate_dice(model: torch.nn.Module, inputs: list[np.ndarray], masks: np.ndarray) -> float:
        return dice(predict(model, inputs, evaluation_batch_size).numpy(), masks, classes)

    return train_from_scratch(
        build_model, make_dataset, lambda m, batch, y: criterion(m.logits(*batch), y.unsqueeze(1).long()), evaluate_dice,
        run, metric_name="dice", spatial_targets=True, batch_size=batch_size, items=items, log=log,
    )
