"""Render Triton ``config.pbtxt`` files for an exported model.

The ``parameters`` block is the contract with the gateway: each value is a JSON document
(task, labels, preprocessing spec, inputs, outputs, report digest), so the gateway learns
everything about a model from Triton's model config and nothing from its own code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

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
    name: str
    backend: str  # "python" (generic ONNX runner) or "onnxruntime"
    max_batch_size: int
    inputs: list[TensorConfig]
    outputs: list[TensorConfig]
    max_queue_delay_us: int
    preferred_batch_sizes: list[int] = field(default_factory=list)
    instance_count: int = 1
    instance_kind: str = "KIND_CPU"
    parameters: dict[str, Any] = field(default_factory=dict)
    default_model_filename: str | None = None


def _quote(text: str) -> str:
    """A protobuf text-format string literal; ``text`` must be ASCII (JSON ensures it)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _tensor(t: TensorConfig) -> str:
    return f'  {{ name: {_quote(t.name)} data_type: {_TRITON_DTYPES[t.dtype]} dims: [ {", ".join(map(str, t.dims))} ] }}'


def render(config: ModelConfig) -> str:
    lines = [
        f"name: {_quote(config.name)}",
        f"backend: {_quote(config.backend)}",
        f"max_batch_size: {config.max_batch_size}",
    ]
    if config.default_model_filename:
        lines.append(f"default_model_filename: {_quote(config.default_model_filename)}")
    lines += ["input ["] + [",\n".join(_tensor(t) for t in config.inputs)] + ["]"]
    lines += ["output ["] + [",\n".join(_tensor(t) for t in config.outputs)] + ["]"]
    preferred = (
        f" preferred_batch_size: [ {', '.join(map(str, config.preferred_batch_sizes))} ]"
        if config.preferred_batch_sizes
        else ""
    )
    lines.append(f"dynamic_batching {{ max_queue_delay_microseconds: {config.max_queue_delay_us}{preferred} }}")
    lines.append(f"instance_group [ {{ kind: {config.instance_kind} count: {config.instance_count} }} ]")
    warm_inputs = " ".join(
        f"inputs {{ key: {_quote(t.name)} value: {{ data_type: {_TRITON_DTYPES[t.dtype]} "
        f"dims: [ {', '.join(map(str, t.dims))} ] zero_data: true }} }}"
        for t in config.inputs
    )
    lines.append(f'model_warmup [ {{ name: "zeros_batch_1" batch_size: 1 {warm_inputs} }} ]')
    for key, value in config.parameters.items():
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=True, separators=(",", ":"))
        lines.append(f"parameters {{ key: {_quote(key)} value: {{ string_value: {_quote(text)} }} }}")
    return "\n".join(lines) + "\n"
