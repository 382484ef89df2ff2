"""Fixtures for export tests: small labelled DICOM folders written by the zoo's writers, and
specs of small, randomly initialised zoo networks (fast to export, real in every step)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

CT_PREP = {"modalities": ["CT"], "window": {"preset": "lung"}, "output_size": [128, 128], "layout": "CHW", "dtype": "float32"}


@pytest.fixture(scope="session")
def classifier_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``validation/`` (16 labelled CT slices) and ``calibration/`` (64 CT slices)."""
    from devtools.zoo.datasets import write_classifier_set

    root = tmp_path_factory.mktemp("classifier-data")
    write_classifier_set(root / "validation", 16, seed=5)
    write_classifier_set(root / "calibration", 64, seed=6)
    return root


@pytest.fixture(scope="session")
def tiny_classifier_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised zoo classifier with narrow widths (seeded)."""
    import torch

    from devtools.zoo.ct_nodule_classifier import NoduleClassifier

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny-weights") / "tiny_classifier.pt"
    torch.save(NoduleClassifier(widths=(8, 8, 16, 16)).state_dict(), path)
    return path


def classifier_spec_data(data: Path, weights: Path, **changes: Any) -> dict[str, Any]:
    """A complete classification spec for the tiny classifier over ``data``."""
    spec: dict[str, Any] = {
        "name": "tiny_classifier",
        "task": "classification",
        "description": "test model",
        "source": {
            "kind": "python",
            "factory": "devtools.zoo.ct_nodule_classifier:NoduleClassifier",
            "kwargs": {"widths": [8, 8, 16, 16]},
            "state_dict": str(weights),
        },
        "inputs": [{"name": "image", "shape": [-1, 1, 128, 128], "dtype": "float32", "modality": "CT"}],
        "outputs": [{"name": "probabilities", "meaning": "class_probabilities", "labels": ["no_nodule", "nodule"]}],
        "preprocessing": CT_PREP,
        "calibration": {"dicom_dir": str(data / "calibration")},
        "validation": {"dicom_dir": str(data / "validation"), "manifest": str(data / "validation" / "manifest.csv")},
        "batching": {"max_batch_size": 8, "max_queue_delay_us": 1000},
    }
    spec.update(changes)
    return spec


@pytest.fixture
def write_spec(tmp_path: Path) -> Callable[[dict[str, Any]], Path]:
    """Write a spec dict as YAML into the test's folder; returns its path."""

    def write(data: dict[str, Any], name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data))
        return path

    return write


@pytest.fixture
def tiny_classifier_spec(classifier_data: Path, tiny_classifier_weights: Path, write_spec) -> Callable[..., Path]:
    """``tiny_classifier_spec(**changes)``: path of a tiny classifier spec with top-level changes."""

    def make(**changes: Any) -> Path:
        return write_spec(classifier_spec_data(classifier_data, tiny_classifier_weights, **changes))

    return make
