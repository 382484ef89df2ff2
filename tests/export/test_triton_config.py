"""Triton configs: every rendering parses as Triton's own ModelConfig protobuf."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from export.onnx2trt import Engine
from export.spec import load_spec
from export.triton.config import ModelConfig, TensorConfig, render
from export.triton.model_dir import VariantDirectory, write_configs

TENSORS = {
    "inputs": [TensorConfig("ct", "float32", [1, 128, 128]), TensorConfig("pet", "float32", [1, 64, 64])],
    "outputs": [TensorConfig("labels", "uint8", [32, 96, 96])],
}


def _parse(text: str) -> model_config_pb2.ModelConfig:
    return text_format.Parse(text, model_config_pb2.ModelConfig())


def test_python_runner_config() -> None:
    parameters = {"task": "multi-input", "inputs": [{"name": "ct", "note": 'quote " and back\\slash'}], "medserve_contract": "1"}
    config = _parse(
        render(ModelConfig(name="fusion", backend="python", max_batch_size=16, max_queue_delay_us=1500, preferred_batch_sizes=[4, 8], instance_count=2, parameters=parameters, **TENSORS))
    )

    assert (config.name, config.backend, config.max_batch_size) == ("fusion", "python", 16)
    assert [(i.name, list(i.dims), i.data_type) for i in config.input] == [
        ("ct", [1, 128, 128], model_config_pb2.TYPE_FP32),
        ("pet", [1, 64, 64], model_config_pb2.TYPE_FP32),
    ]
    assert (config.output[0].data_type, list(config.output[0].dims)) == (model_config_pb2.TYPE_UINT8, [32, 96, 96])
    assert config.dynamic_batching.max_queue_delay_microseconds == 1500
    assert list(config.dynamic_batching.preferred_batch_size) == [4, 8]
    assert (config.instance_group[0].kind, config.instance_group[0].count) == (model_config_pb2.ModelInstanceGroup.KIND_CPU, 2)
    warmup = config.model_warmup[0]
    assert warmup.batch_size == 1 and set(warmup.inputs) == {"ct", "pet"} and warmup.inputs["pet"].zero_data
    assert json.loads(config.parameters["inputs"].string_value) == parameters["inputs"]  # quotes survive
    assert config.parameters["medserve_contract"].string_value == "1"


def test_tensorrt_config_selects_engines_by_compute_capability() -> None:
    config = _parse(
        render(
            ModelConfig(
                name="m",
                platform="tensorrt_plan",
                instance_kind="KIND_GPU",
                max_batch_size=8,
                max_queue_delay_us=100,
                default_model_filename="model.fp16.sm90.plan",
                cc_model_filenames={"9.0": "model.fp16.sm90.plan", "8.0": "model.fp16.sm80.plan"},
                **TENSORS,
            )
        )
    )
    assert (config.platform, config.backend) == ("tensorrt_plan", "")
    assert dict(config.cc_model_filenames) == {"8.0": "model.fp16.sm80.plan", "9.0": "model.fp16.sm90.plan"}
    assert config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_GPU


def test_backend_or_platform_exactly_one() -> None:
    with pytest.raises(ValueError, match="exactly one of backend and platform"):
        ModelConfig(name="m", backend="python", platform="tensorrt_plan", max_batch_size=1, max_queue_delay_us=0, **TENSORS)


def test_variant_directory_gets_all_configs(tiny_classifier_spec, tmp_path: Path) -> None:
    spec = load_spec(tiny_classifier_spec())
    variant = VariantDirectory(name="tiny_classifier", directory=tmp_path / "tiny_classifier", precision="fp32")
    variant.version_dir.mkdir(parents=True)
    variant.engines.append(Engine(file="model.fp16.sm90.plan", compute_capability="9.0", precision="fp16"))
    write_configs(variant, spec, [[-1, 2]], {"precision": "fp32", "medserve_contract": "1"})

    default = _parse((variant.directory / "config.pbtxt").read_text())
    native = _parse((variant.directory / "configs" / "onnxruntime.pbtxt").read_text())
    engine = _parse((variant.directory / "configs" / "tensorrt.pbtxt").read_text())
    assert (default.backend, native.backend, engine.platform) == ("python", "onnxruntime", "tensorrt_plan")
    assert native.default_model_filename == "model.onnx"
    assert native.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_AUTO
    assert engine.parameters["precision"].string_value == "fp16"  # the engine's own precision
    assert default.parameters["precision"].string_value == "fp32"
    assert (variant.version_dir / "model.py").read_text().startswith('"""Generic Triton Python-backend model')
    assert all(c.name == "tiny_classifier" and c.max_batch_size == 8 for c in (default, native, engine))


def test_one_tensorrt_config_serves_one_precision(tiny_classifier_spec, tmp_path: Path) -> None:
    spec = load_spec(tiny_classifier_spec())
    variant = VariantDirectory(name="m", directory=tmp_path / "m", precision="fp32")
    variant.version_dir.mkdir(parents=True)
    variant.engines.extend([Engine("a.plan", "9.0", "fp16"), Engine("b.plan", "9.0", "int8")])
    with pytest.raises(ValueError, match=r"one TensorRT config serves one precision; m has \['fp16', 'int8'\]"):
        write_configs(variant, spec, [[-1, 2]], {})
