"""Render Triton ``config.pbtxt`` files for an exported model variant.

Three renderings of one variant (:data:`RENDERINGS`), selected in production with
``--model-config-name``; which of them a model directory gets follows from the export
variants it holds (:mod:`export.variants`):

- ``config.pbtxt`` (default): the generic Python-backend runner (``1/model.py``) executing the
  ONNX file with onnxruntime — what the CPU ``tritonserver`` of development and CI runs;
- ``configs/onnxruntime.pbtxt``: the NGC image's native ``onnxruntime`` backend;
- ``configs/tensorrt.pbtxt``: TensorRT engines chosen per GPU by ``cc_model_filenames``.

:func:`parse` reads a rendered config back (the bench re-renders configs without dynamic
batching through :func:`render`, instead of editing their text).

The ``parameters`` block is the contract with the gateway: each value is a JSON document
(task, labels, preprocessing spec, inputs, outputs, drift reference, report digest), so the
gateway learns everything about a model from Triton's model config and nothing from its code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ONNXRUNTIME",
    "PYTHON_RUNNER",
    "RENDERINGS",
    "TENSORRT",
    "ModelConfig",
    "Rendering",
    "TensorConfig",
    "parse",
    "render",
]

_TRITON_DTYPES = {
    "float32": "TYPE_FP32",
    "float16": "TYPE_FP16",
    "uint8": "TYPE_UINT8",
    "int64": "TYPE_INT64",
}


@dataclass(frozen=True)
class Rendering:
    """One Triton config of a model directory: the file it is written to (relative to the
    model directory) and how Triton executes the variant's artifact with it.

    ``serves_engines``: the artifact is the directory's TensorRT engines (default file and
    ``cc_model_filenames`` from them, ``precision`` the engines'); otherwise the ONNX file,
    named as ``default_model_filename`` where ``names_model_file`` (the Python runner finds it
    through the ``onnx_model_filename`` parameter instead). ``needs_runner``: ``1/model.py``,
    the generic runner, must sit beside the model file."""

    file: str
    instance_kind: str
    backend: str | None = None
    platform: str | None = None
    serves_engines: bool = False
    names_model_file: bool = True
    needs_runner: bool = False


PYTHON_RUNNER = Rendering("config.pbtxt", "KIND_CPU", backend="python", names_model_file=False, needs_runner=True)
ONNXRUNTIME = Rendering("configs/onnxruntime.pbtxt", "KIND_AUTO", backend="onnxruntime")
TENSORRT = Rendering("configs/tensorrt.pbtxt", "KIND_GPU", platform="tensorrt_plan", serves_engines=True)
#: Every rendering, in the order they are written.
RENDERINGS = (PYTHON_RUNNER, ONNXRUNTIME, TENSORRT)


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


def render(config: ModelConfig, *, dynamic_batching: bool = True) -> str:
    """The ``config.pbtxt`` text of ``config``; without ``dynamic_batching`` Triton runs each
    request as it comes (the bench's no-batching deployment)."""
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
    if dynamic_batching:
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


def _position_in(text: str):
    """Sort key: where parameter ``key`` is written in ``text`` (unknown spellings last)."""

    def position(key: str) -> int:
        found = text.find(f"parameters {{ key: {_quote(key)}")
        return found if found >= 0 else len(text)

    return position


def parse(text: str) -> ModelConfig:
    """The :class:`ModelConfig` of a rendered ``config.pbtxt``: ``render(parse(text))`` is
    ``text`` for every config :func:`render` writes. Read through Triton's own ModelConfig
    schema (``tritonclient``, imported here: export itself never needs it); parameter values
    stay the strings they are in the file, in the file's order (a protobuf map has none)."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    proto = text_format.Parse(text, model_config_pb2.ModelConfig())
    dtypes = {getattr(model_config_pb2, triton): dtype for dtype, triton in _TRITON_DTYPES.items()}
    group = proto.instance_group[0] if proto.instance_group else None
    return ModelConfig(
        name=proto.name,
        max_batch_size=proto.max_batch_size,
        inputs=[TensorConfig(t.name, dtypes[t.data_type], list(t.dims)) for t in proto.input],
        outputs=[TensorConfig(t.name, dtypes[t.data_type], list(t.dims)) for t in proto.output],
        max_queue_delay_us=proto.dynamic_batching.max_queue_delay_microseconds,
        backend=proto.backend or None,
        platform=proto.platform or None,
        preferred_batch_sizes=list(proto.dynamic_batching.preferred_batch_size),
        instance_count=group.count if group is not None else 1,
        instance_kind=model_config_pb2.ModelInstanceGroup.Kind.Name(group.kind) if group is not None else "KIND_CPU",
        parameters={key: proto.parameters[key].string_value for key in sorted(proto.parameters, key=_position_in(text))},
        default_model_filename=proto.default_model_filename or None,
        cc_model_filenames=dict(proto.cc_model_filenames),
    )
