"""PyTorch → ONNX FP32, checked by ``onnx.checker`` and verified against PyTorch.

Verification runs real preprocessed inputs through both and records the max absolute and max
relative difference per output; NaN/Inf or a difference beyond the spec's tolerance fails.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .spec import ExportSpec, PythonSource


class ExportFailed(RuntimeError):
    """A conversion or verification step failed; the message says which and why."""


def load_torch_model(spec: ExportSpec):
    """The trained model in eval mode, from a factory + state_dict or a TorchScript archive."""
    import torch

    source = spec.source
    if isinstance(source, PythonSource):
        module_name, _, attribute = source.factory.partition(":")
        try:
            factory = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as exc:
            raise ExportFailed(f"cannot import model factory {source.factory!r}: {exc}") from exc
        model = factory(**source.kwargs)
        try:
            state = torch.load(source.state_dict, map_location="cpu", weights_only=True)
        except FileNotFoundError as exc:
            raise ExportFailed(f"state_dict file not found: {source.state_dict}") from exc
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise ExportFailed(f"state_dict does not fit {source.factory}: {exc}") from exc
    else:
        try:
            model = torch.jit.load(str(source.archive), map_location="cpu")
        except (RuntimeError, ValueError, FileNotFoundError) as exc:
            raise ExportFailed(f"cannot load TorchScript archive {source.archive}: {exc}") from exc
    return model.eval()


def export_onnx(model, spec: ExportSpec, path: Path) -> Path:
    """Export with a dynamic batch axis on every input and output; legacy (TorchScript-based)
    exporter, which also handles ``torch.jit`` archives."""
    import onnx
    import torch

    examples = tuple(torch.zeros([2, *t.shape[1:]], dtype=getattr(torch, t.dtype)) for t in spec.inputs)
    dynamic_axes = {t.name: {0: "batch"} for t in spec.inputs} | {o.name: {0: "batch"} for o in spec.outputs}
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(
            model,
            examples,
            str(path),
            input_names=[t.name for t in spec.inputs],
            output_names=[o.name for o in spec.outputs],
            dynamic_axes=dynamic_axes,
            opset_version=spec.opset,
            do_constant_folding=True,
            dynamo=False,
        )
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportFailed(f"onnx.checker rejected the exported model: {exc}") from exc
    return path


@dataclass(frozen=True)
class OutputDifference:
    """How far one ONNX output is from PyTorch over the verification inputs."""

    name: str
    max_abs: float
    max_rel: float

    def to_dict(self) -> dict[str, float | str]:
        return {"name": self.name, "max_abs": self.max_abs, "max_rel": self.max_rel}


def torch_outputs(model, inputs: list[np.ndarray]) -> list[np.ndarray]:
    import torch

    with torch.no_grad():
        result = model(*[torch.from_numpy(x) for x in inputs])
    result = result if isinstance(result, (tuple, list)) else (result,)
    return [r.detach().cpu().numpy() for r in result]


def verify_against_torch(
    model, onnx_path: Path, spec: ExportSpec, inputs: list[np.ndarray]
) -> list[OutputDifference]:
    """Run ``inputs`` (one batch per model input) through PyTorch and onnxruntime."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    reference = torch_outputs(model, inputs)
    actual = session.run([o.name for o in spec.outputs], {t.name: x for t, x in zip(spec.inputs, inputs)})
    differences = []
    for output, ref, got in zip(spec.outputs, reference, actual):
        if not np.isfinite(got).all():
            raise ExportFailed(f"ONNX output {output.name!r} contains NaN or Inf")
        if ref.shape != got.shape:
            raise ExportFailed(f"ONNX output {output.name!r} has shape {got.shape}, PyTorch {ref.shape}")
        delta = np.abs(got.astype(np.float64) - ref.astype(np.float64))
        rel = delta / np.maximum(np.abs(ref.astype(np.float64)), 1e-6)
        diff = OutputDifference(output.name, float(delta.max()), float(rel.max()))
        if diff.max_abs > spec.tolerance_abs:
            raise ExportFailed(
                f"ONNX output {output.name!r} differs from PyTorch by up to {diff.max_abs:.3g} "
                f"(tolerance {spec.tolerance_abs:.3g})"
            )
        differences.append(diff)
    return differences
