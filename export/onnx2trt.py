"""ONNX → TensorRT engines: FP16 from the FP32 model, INT8 from the QDQ model (explicit
quantization, the path TensorRT 10+ keeps), for Triton's ``tensorrt`` backend.

An engine only runs on the GPU architecture it was built for, so files are named by compute
capability (``model.fp16.sm90.plan``) and listed in the config's ``cc_model_filenames``.
``tensorrt`` is imported lazily: on a host without it, or without a CUDA GPU, the step is
reported SKIPPED with :func:`unavailable_reason` — never imitated.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ExportFailed
from .spec import ExportSpec

__all__ = ["Engine", "build_engine", "engine_outputs", "unavailable_reason"]

INSTALL_HINT = "pip install tensorrt (TensorRT 10+) on a host with an NVIDIA GPU"


@dataclass(frozen=True)
class Engine:
    """A serialized engine: its file (in the version folder) and the compute capability
    (``"9.0"``) it runs on — the key Triton's ``cc_model_filenames`` selects it by."""

    file: str
    compute_capability: str
    precision: str


def unavailable_reason() -> str | None:
    """Why TensorRT engines cannot be built here, or None when they can."""
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return f"tensorrt is not installed ({INSTALL_HINT})"
    import torch

    if not torch.cuda.is_available():
        return "tensorrt is installed but no CUDA GPU is visible (torch.cuda.is_available() is False)"
    return None


def _logger():
    import tensorrt as trt

    return trt.Logger(trt.Logger.WARNING)


def build_engine(onnx_path: Path, version_dir: Path, spec: ExportSpec, precision: str) -> Engine:
    """Build a ``precision`` ("fp16" or "int8") engine for batch sizes 1..max_batch_size,
    tuned for ``tensorrt.opt_batch_size``, into ``version_dir``."""
    import tensorrt as trt
    import torch

    logger = _logger()
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportFailed(f"TensorRT cannot parse {onnx_path.name}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, spec.tensorrt.workspace_mb << 20)
    config.set_flag(trt.BuilderFlag.FP16)  # INT8 engines keep FP16 for layers outside Q/DQ pairs
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
    profile = builder.create_optimization_profile()
    for tensor in spec.inputs:
        dims = tuple(tensor.shape[1:])
        profile.set_shape(tensor.name, (1, *dims), (spec.tensorrt.opt_batch_size, *dims), (spec.batching.max_batch_size, *dims))
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportFailed(f"TensorRT could not build a {precision} engine from {onnx_path.name} (see the TensorRT log above)")
    major, minor = torch.cuda.get_device_capability()
    engine = Engine(file=f"model.{precision}.sm{major}{minor}.plan", compute_capability=f"{major}.{minor}", precision=precision)
    (version_dir / engine.file).write_bytes(serialized)
    return engine


def engine_outputs(plan: Path, feeds: dict[str, np.ndarray], names: list[str], batch_size: int = 8) -> list[np.ndarray]:
    """Run an engine on ``feeds`` (host arrays) and return outputs ``names`` as host arrays."""
    import tensorrt as trt
    import torch

    engine = trt.Runtime(_logger()).deserialize_cuda_engine(plan.read_bytes())
    context = engine.create_execution_context()
    stream = torch.cuda.current_stream()
    total = len(next(iter(feeds.values())))
    parts: list[list[np.ndarray]] = []
    for start in range(0, total, batch_size):
        keep = []
        for name, array in feeds.items():
            device = torch.from_numpy(np.ascontiguousarray(array[start : start + batch_size])).cuda()
            context.set_input_shape(name, tuple(device.shape))
            context.set_tensor_address(name, device.data_ptr())
            keep.append(device)
        outputs = {}
        for name in names:
            dtype = torch.from_numpy(np.empty(0, dtype=trt.nptype(engine.get_tensor_dtype(name)))).dtype
            outputs[name] = torch.empty(tuple(context.get_tensor_shape(name)), dtype=dtype, device="cuda")
            context.set_tensor_address(name, outputs[name].data_ptr())
        if not context.execute_async_v3(stream.cuda_stream):
            raise ExportFailed(f"TensorRT engine {plan.name} failed to execute")
        stream.synchronize()
        parts.append([outputs[name].cpu().numpy() for name in names])
    return [np.concatenate(chunks) for chunks in zip(*parts)]
