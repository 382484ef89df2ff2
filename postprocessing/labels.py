"""Class scores → a uint8 label map, by the spec's leading ``threshold`` / ``argmax`` steps."""

from __future__ import annotations

import numpy as np

from .spec import PostprocessingSpec


def argmax_labels(class_scores: np.ndarray) -> np.ndarray:
    """``np.argmax(class_scores, axis=0).astype(uint8)`` for [C, *spatial] scores (the first
    class wins a tie, as with argmax), one pass per class instead of numpy's strided
    reduction over the leading axis (~10x faster on a 2-class 32x96x96 volume)."""
    best = class_scores[0].copy()
    labels = np.zeros(class_scores.shape[1:], dtype=np.uint8)
    for value in range(1, class_scores.shape[0]):
        better = class_scores[value] > best
        labels[better] = value
        np.maximum(best, class_scores[value], out=best)
    return labels


def to_labels(scores: np.ndarray, spec: PostprocessingSpec | None) -> np.ndarray:
    """[C, *spatial] class scores (probabilities for ``threshold``) → uint8 labels [*spatial].

    ``threshold`` steps: background 0 everywhere, then each step sets its ``label`` where
    ``scores[label] > probability`` (strictly; a later step wins where both fire). Argmax when
    the spec has no such step or is None."""
    steps = spec.score_steps if spec is not None else ()
    if not steps or steps[0].op == "argmax":
        return argmax_labels(scores)
    labels = np.zeros(scores.shape[1:], dtype=np.uint8)
    for step in steps:
        assert step.label is not None and step.probability is not None
        if step.label >= scores.shape[0]:
            raise ValueError(f"threshold label {step.label} is not a class of these {scores.shape[0]} class scores")
        labels[scores[step.label] > step.probability] = step.label
    return labels
