"""``medserve train NAME``: train a zoo model from its seed and write weights + metrics."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Callable

import torch

WEIGHTS_DIR = Path(__file__).parent / "weights"

#: zoo model name → module (under devtools.zoo) holding its ``train(seed, log)``.
TRAINERS = {
    "ct_nodule_classifier": "ct_nodule_classifier",
    "ct_nodule_segmenter": "ct_nodule_segmenter",
    "ct_nodule_segmenter_3d": "ct_nodule_segmenter_3d",
    "ct_pet_nodule_classifier": "ct_pet_nodule_classifier",
}


def train_zoo_model(name: str, seed: int = 0, out_dir: Path = WEIGHTS_DIR, log: Callable[[str], None] = print) -> dict:
    """Train ``name`` from ``seed`` on every CPU core and write ``<name>.pt`` (state_dict)
    and ``<name>.metrics.json`` into ``out_dir``; returns the metrics."""
    if name not in TRAINERS:
        raise SystemExit(f"unknown zoo model {name!r}; known: {', '.join(sorted(TRAINERS))}")
    module = importlib.import_module(f"{__package__}.{TRAINERS[name]}")
    result = module.train(seed=seed, log=log)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.save(result.state_dict, out_dir / f"{name}.pt")
    (out_dir / f"{name}.metrics.json").write_text(json.dumps(result.metrics, indent=2) + "\n")
    return result.metrics
