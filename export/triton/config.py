"""Render Triton ``config.pbtxt`` files for an exported model variant.

Three renderings of one variant, selected in production with ``--model-config-name``:

- ``config.pbtxt`` (default): the generic Python-backend runner (``1/model.py``) executing the
  ONNX file with onnxruntime — what the CPU ``tritonserver`` of development and CI runs;
- ``configs/onnxruntime.pbtxt``: the NGC image's native ``onnxruntime`` backend;
- ``configs/tensorrt.pbtxt``: TensorRT engines chosen per GPU by ``cc_model_filenames``.

The ``parameters`` block is the contract with the gateway: each value is a JSON document
(task, labels, preprocessing spec, inputs, outputs, drift reference, report digest), so the
gateway learns everything about a model from Triton's model config and nothing from its code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ModelConfig", "TensorConfig", "render"]

_TRITON_DTYPES = {
    "float32": "TYPE_FP32",
    "float16": "TYPE_FP16",
    "uint8": "TYPE_UINT8",
    "int64": "TYPE_INT64",
}


@dataclass(frozen=True)
class TensorConfig:
    name: str
    dtype: str
    dims: list[int]  # without the batch axis


@dataclass(frozen=True)
class ModelConfig:
    """One rendering of a model's config. Give ``backend`` ("python", "onnxruntime") or
    ``platform`` ("tensorrt_plan"); ``instance_kind`` is KIND_CPU, KIND_GPU or KIND_AUTO."""

    name: str
    max_batch_size: int
    inputs: list[TensorConfig]
    outputs: list[TensorConfig]
    max_queue_delay_us: int
    backend: str | None = None
    platform: str | None = None
    preferred_batch_sizes: list[int] = field(default_factory=list)
    instance_count: int = 1
    instance_kind: str = "KIND_CPU"
    parameters: dict[str, Any] = field(default_factory=dict)
    default_model_filename: str | None = None
    cc_model_filenames: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.backend is None) == (self.platform is None):
            raise ValueError("give exactly one of backend and platform")


def _quote(text: str) -> str:
    """A protobuf text-format string literal; ``text`` must be ASCII (JSON ensures it)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _dims(dims: list[int]) -> str:
    return f"[ {', '.join(map(str, dims))} ]"


def _tensor(t: TensorConfig) -> str:
    return f"  {{ name: {_quote(t.name)} data_type: {_TRITON_DTYPES[t.dtype]} dims: {_dims(t.dims)} }}"


def render(config: ModelConfig) -> str:
    lines = [f"name: {_quote(config.name)}"]
    if config.backend is not None:
        lines.append(f"backend: {_quote(config.backend)}")
    else:
        lines.append(f"platform: {_quote(config.platform or '')}")
    lines.append(f"max_batch_size: {config.max_batch_size}")
    if config.default_model_filename:
        lines.append(f"default_model_filename: {_quote(config.default_model_filename)}")
    for capability, filename in sorted(config.cc_model_filenames.items()):
        lines.append(f"cc_model_filenames {{ key: {_quote(capability)} value: {_quote(filename)} }}")
    lines += ["input ["] + [",\n".join(_tensor(t) for t in config.inputs)] + ["]"]
    lines += ["output ["] + [",\n".join(_tensor(t) for t in config.outputs)] + ["]"]
    preferred = f" preferred_batch_size: {_dims(config.preferred_batch_sizes)}" if config.preferred_batch_sizes else ""
    lines.append(f"dynamic_batching {{ max_queue_delay_microseconds: {config.max_queue_delay_us}{preferred} }}")
    lines.append(f"instance_group [ {{ kind: {config.instance_kind} count: {config.instance_count} }} ]")
    warm_inputs = " ".join(
        f"inputs {{ key: {_quote(t.name)} value: {{ data_type: {_TRITON_DTYPES[t.dtype]} dims: {_dims(t.dims)} zero_data: true }} }}"
        for t in config.inputs
    )
    lines.append(f'model_warmup [ {{ name: "zeros_batch_1" batch_size: 1 {warm_inputs} }} ]')
    for key, value in config.parameters.items():
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=True, separators=(",", ":"))
        lines.append(f"parameters {{ key: {_quote(key)} value: {{ string_value: {_quote(text)} }} }}")
    return "\n".join(lines) + "\n"
