"""``medserve train NAME``: train a zoo model from its seed and write weights + metrics."""

from __future__ import annotations

import json
from pathlib import Path

import torch

WEIGHTS_DIR = Path(__file__).parent / "weights"


def train_zoo_model(name: str, seed: int = 0, out_dir: Path = WEIGHTS_DIR) -> dict:
    from . import ct_nodule_classifier

    trainers = {ct_nodule_classifier.NAME: ct_nodule_classifier.train}
    if name not in trainers:
        raise SystemExit(f"unknown zoo model {name!r}; known: {', '.join(sorted(trainers))}")
    torch.set_num_threads(max(1, torch.get_num_threads()))
    result = trainers[name](seed=seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.save(result.state_dict, out_dir / f"{name}.pt")
    (out_dir / f"{name}.metrics.json").write_text(json.dumps(result.metrics, indent=2) + "\n")
    return result.metrics
