"""PyTorch → ONNX FP32 with a dynamic batch axis, checked by ``onnx.checker``.

The model comes from a Python factory + ``state_dict`` or from a TorchScript archive (no
Python source needed). Export uses the TorchScript-based exporter, the one that also takes
``torch.jit`` archives; verification against PyTorch lives in :mod:`export.verify`.
"""

from __future__ import annotations

import importlib
import warnings
from pathlib import Path

import numpy as np

from .errors import ExportFailed
from .spec import ExportSpec, PythonSource

__all__ = ["export_onnx", "load_torch_model", "torch_outputs"]


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
        try:
            model = factory(**source.kwargs)
        except TypeError as exc:
            raise ExportFailed(f"cannot build the model with {source.factory}(**{source.kwargs}): {exc}") from exc
        try:
            state = torch.load(source.state_dict, map_location="cpu", weights_only=True)
        except FileNotFoundError as exc:
            raise ExportFailed(f"state_dict file not found: {source.state_dict}") from exc
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise ExportFailed(f"state_dict does not fit {source.factory}: {exc}") from exc
    else:
        if not source.archive.is_file():
            raise ExportFailed(f"TorchScript archive not found: {source.archive}")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated, yet archives exist to be served
                model = torch.jit.load(str(source.archive), map_location="cpu")
        except (RuntimeError, ValueError) as exc:
            raise ExportFailed(f"cannot load TorchScript archive {source.archive}: {exc}") from exc
    return model.eval()


def torch_outputs(model, feeds: dict[str, np.ndarray], batch_size: int = 16) -> list[np.ndarray]:
    """PyTorch's outputs for ``feeds`` (inputs by name, in the model's argument order), run
    ``batch_size`` cases at a time to bound memory on 3D inputs."""
    import torch

    arrays = list(feeds.values())
    parts: list[list[np.ndarray]] = []
    with torch.no_grad():
        for start in range(0, len(arrays[0]), batch_size):
            result = model(*[torch.from_numpy(np.ascontiguousarray(a[start : start + batch_size])) for a in arrays])
            result = result if isinstance(result, (tuple, list)) else (result,)
            parts.append([r.detach().cpu().numpy() for r in result])
    return [np.concatenate(chunks) for chunks in zip(*parts)]


def export_onnx(model, spec: ExportSpec, path: Path) -> Path:
    """Export with a dynamic batch axis on every input and output at ``spec.opset``."""
    import onnx
    import torch

    examples = tuple(torch.zeros([2, *t.shape[1:]], dtype=getattr(torch, t.dtype)) for t in spec.inputs)
    dynamic_axes = {t.name: {0: "batch"} for t in spec.inputs} | {o.name: {0: "batch"} for o in spec.outputs}
    with torch.no_grad():
        produced = model(*examples)
    count = len(produced) if isinstance(produced, (tuple, list)) else 1
    if count != len(spec.outputs):
        declared = [o.name for o in spec.outputs]
        raise ExportFailed(f"the model returns {count} output(s); the spec declares {len(declared)}: {declared}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation and tracer notices, not actionable here
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
