"""Model outputs → answers a clinician or a downstream system can use."""

from __future__ import annotations

import numpy as np

from .catalog import ModelCard
from .errors import InferenceFailed


def classification(card: ModelCard, probabilities: np.ndarray) -> list[tuple[str, float]]:
    """(label, probability) pairs, highest first, from a [1, n_labels] probability output."""
    row = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    if row.shape[0] != len(card.labels):
        raise InferenceFailed(f"model {card.name!r} returned {row.shape[0]} scores for {len(card.labels)} labels")
    if not np.isfinite(row).all():
        raise InferenceFailed(f"model {card.name!r} returned non-finite probabilities")
    row = np.clip(row, 0.0, 1.0)
    return sorted(zip(card.labels, row.tolist()), key=lambda pair: pair[1], reverse=True)
