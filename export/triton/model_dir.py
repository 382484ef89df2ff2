"""One Triton model directory per written variant::

    <model>/config.pbtxt               Python-backend runner + onnxruntime (CPU development, CI)
    <model>/configs/onnxruntime.pbtxt  native onnxruntime backend (NGC image)
    <model>/configs/tensorrt.pbtxt     TensorRT engines, where they were built
    <model>/1/model.onnx               the verified ONNX model (FP32 or INT8 QDQ)
    <model>/1/model.py                 the generic runner (export/triton/onnx_runner.py)
    <model>/1/model.<precision>.sm<cc>.plan   TensorRT engines, where built
    <model>/export_report.{json,md}
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..onnx2trt import Engine
from ..spec import ExportSpec
from ..variants import renderings_for
from .config import ModelConfig, Rendering, TensorConfig, render

__all__ = ["ONNX_FILE", "RUNNER_SOURCE", "VariantDirectory", "write_configs"]

RUNNER_SOURCE = Path(__file__).parent / "onnx_runner.py"
ONNX_FILE = "model.onnx"


@dataclass(frozen=True)
class VariantDirectory:
    """A variant being assembled: its Triton name, folder, precision and TensorRT engines."""

    name: str
    directory: Path
    precision: str
    engines: list[Engine] = field(default_factory=list)

    @property
    def version_dir(self) -> Path:
        return self.directory / "1"

    @property
    def onnx_path(self) -> Path:
        return self.version_dir / ONNX_FILE


def write_configs(
    variant: VariantDirectory, spec: ExportSpec, output_shapes: list[list[int]], parameters: dict[str, Any]
) -> None:
    """Write the configs of the variants ``variant`` holds (its ONNX model and its engines,
    :func:`export.variants.renderings_for`), and the runner where a config needs it."""
    engine_precisions = {e.precision for e in variant.engines}
    if len(engine_precisions) > 1:
        raise ValueError(f"one TensorRT config serves one precision; {variant.name} has {sorted(engine_precisions)}")
    common = {
        "name": variant.name,
        "max_batch_size": spec.batching.max_batch_size,
        "inputs": [TensorConfig(t.name, t.dtype, t.shape[1:]) for t in spec.inputs],
        "outputs": [TensorConfig(o.name, o.dtype, shape[1:]) for o, shape in zip(spec.outputs, output_shapes)],
        "max_queue_delay_us": spec.batching.max_queue_delay_us,
        "preferred_batch_sizes": spec.batching.preferred_batch_sizes,
        "instance_count": spec.instance_count,
    }
    for rendering in renderings_for(variant.precision, engine_precisions):
        if rendering.needs_runner:
            shutil.copyfile(RUNNER_SOURCE, variant.version_dir / "model.py")
        target = variant.directory / rendering.file
        target.parent.mkdir(exist_ok=True)
        target.write_text(render(ModelConfig(**common, **_served_files(rendering, variant, parameters))))


def _served_files(rendering: Rendering, variant: VariantDirectory, parameters: dict[str, Any]) -> dict[str, Any]:
    """The ``rendering``'s backend, instance kind, model files and parameters for ``variant``."""
    served: dict[str, Any] = {
        "backend": rendering.backend, "platform": rendering.platform, "instance_kind": rendering.instance_kind, "parameters": parameters,
    }
    if rendering.serves_engines:
        return served | {
            "default_model_filename": variant.engines[0].file,
            "cc_model_filenames": {e.compute_capability: e.file for e in variant.engines},
            "parameters": parameters | {"precision": variant.engines[0].precision},
        }
    return served | {"default_model_filename": ONNX_FILE if rendering.names_model_file else None}
