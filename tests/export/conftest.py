"""Fixtures for export tests: small labelled DICOM folders written by the zoo's writers, and
specs of small, randomly initialised zoo networks (fast to export, real in every step)."""

from __future__ import annotations

import warnings
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


def _instance_norm_unet(seed: int):
    """MONAI's 3D UNet with instance norm and a softmax head. Convolution weights are scaled
    by 100 so that its logits are as confident as a trained network's (a random one's sit
    near 0, where no float difference shows): the regime where ONNX probabilities move."""
    import torch
    from monai.networks.nets import UNet

    torch.manual_seed(seed)
    unet = UNet(spatial_dims=3, in_channels=1, out_channels=3, channels=(8, 16, 32), strides=(2, 2), num_res_units=1, norm="instance")
    with torch.no_grad():
        for module in unet.modules():
            if isinstance(module, (torch.nn.Conv3d, torch.nn.ConvTranspose3d)):
                module.weight.mul_(100.0)
    return torch.nn.Sequential(unet, torch.nn.Softmax(dim=1)).eval()


def _export_unet(model, path: Path) -> Path:
    import torch

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notice on InstanceNorm's training mode
        torch.onnx.export(
            model, torch.zeros(1, 1, 48, 48, 48), str(path), input_names=["image"], output_names=["probabilities"],
            dynamic_axes={"image": {0: "batch"}, "probabilities": {0: "batch"}}, opset_version=17, do_constant_folding=True, dynamo=False,
        )
    return path


@pytest.fixture(scope="session")
def instance_norm_unet() -> Callable[[int], Any]:
    """``instance_norm_unet(seed)``: MONAI's 3D InstanceNorm UNet (1 → 3 classes, softmax) with
    confident logits, initialised from ``seed``."""
    return _instance_norm_unet


@pytest.fixture(scope="session")
def export_unet() -> Callable[[Any, Path], Path]:
    """``export_unet(model, path)``: the UNet as ONNX (opset 17, dynamic batch, input ``image``
    [N, 1, 48, 48, 48], output ``probabilities``), exported by PyTorch."""
    return _export_unet
