"""Verification by task on a real InstanceNorm 3D network, exported by PyTorch and run by
onnxruntime: the defaults pass its correct export, whose probabilities move by float rounding,
and fail broken exports of it (weights perturbed in the graph, another checkpoint)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from export.errors import ExportFailed
from export.spec import OutputSpec, ToleranceSpec
from export.verify import compare_outputs, onnx_outputs

OUTPUT = OutputSpec(name="probabilities", meaning="segmentation_probabilities", labels=["background", "organ", "lesion"])  # the UNet's 3 classes
DEFAULTS = ToleranceSpec()


@pytest.fixture(scope="module")
def volumes() -> np.ndarray:
    """Two smooth 48³ volumes with a CT-like offset (structure at the scale of organs)."""
    from scipy.ndimage import gaussian_filter

    noise = np.random.default_rng(1).normal(size=(2, 48, 48, 48))
    return (np.stack([gaussian_filter(v, 3) * 10 for v in noise])[:, None] + 1000).astype(np.float32)


@pytest.fixture(scope="module")
def unet_export(volumes: np.ndarray, tmp_path_factory: pytest.TempPathFactory, instance_norm_unet, export_unet):
    """(PyTorch's probabilities, the ONNX file) of the seed-0 UNet."""
    import torch

    model = instance_norm_unet(0)
    with torch.no_grad():
        reference = model(torch.from_numpy(volumes)).numpy()
    return reference, export_unet(model, tmp_path_factory.mktemp("unet") / "unet.onnx")


def _verify(reference: np.ndarray, onnx_path: Path, volumes: np.ndarray):
    (actual,) = onnx_outputs(onnx_path, {"image": volumes}, [OUTPUT.name])
    (difference,) = compare_outputs(
        [OUTPUT], [reference], [actual], artifact="ONNX FP32",
        tolerance_abs=DEFAULTS.fp32_abs, label_mismatch=DEFAULTS.label_mismatch, min_class_dice=DEFAULTS.min_class_dice,
    )
    return difference


def test_a_correct_export_passes_on_labels_though_probabilities_move(unet_export, volumes: np.ndarray) -> None:
    reference, onnx_path = unet_export
    difference = _verify(reference, onnx_path, volumes)

    assert difference.max_abs > 0  # float rounding moved probabilities; it does not decide
    assert difference.label_disagreement <= DEFAULTS.label_mismatch
    assert min(difference.class_dice.values()) >= DEFAULTS.min_class_dice
    assert set(difference.class_dice) == {"organ", "lesion"}
    assert "(decided); max abs" in difference.decided_by


def test_an_export_with_perturbed_weights_fails(unet_export, volumes: np.ndarray, tmp_path: Path) -> None:
    reference, onnx_path = unet_export
    graph = onnx.load(str(onnx_path))
    # The head: instance norm absorbs noise in the convolutions it follows (20 % on the first
    # one flips no label), the last convolution's reaches the labels.
    target = [init for init in graph.graph.initializer if len(init.dims) == 5][-1]
    values = numpy_helper.to_array(target)
    noise = np.random.default_rng(0).normal(scale=0.05 * values.std(), size=values.shape)
    target.CopyFrom(numpy_helper.from_array((values + noise).astype(values.dtype), target.name))
    onnx.save(graph, str(tmp_path / "perturbed.onnx"))

    with pytest.raises(ExportFailed, match=r"ONNX FP32 output 'probabilities': \d+\.\d+% of labels differ from PyTorch \(tolerance 0.10%\)"):
        _verify(reference, tmp_path / "perturbed.onnx", volumes)


def test_an_export_of_another_checkpoint_fails(unet_export, volumes: np.ndarray, tmp_path: Path, instance_norm_unet, export_unet) -> None:
    reference, _ = unet_export
    with pytest.raises(ExportFailed, match=r"ONNX FP32 output 'probabilities': \d+\.\d+% of labels differ from PyTorch \(tolerance 0.10%\)"):
        _verify(reference, export_unet(instance_norm_unet(1), tmp_path / "other.onnx"), volumes)
