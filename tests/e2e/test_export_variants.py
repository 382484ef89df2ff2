"""Every variant export wrote into the demo repository loads in the real tritonserver and
answers exactly what onnxruntime answers on the same ONNX file, for real DICOM prepared from
the specs in its Triton config — the way the gateway prepares them."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from devtools.zoo.repository import DATA_DIR, DERIVED, ZOO
from preprocessing import PreprocessingSpec

VARIANTS = [name for base in ZOO for name in (base, f"{base}_int8")] + list(DERIVED)  # derived exports are FP32 only
NUMPY_DTYPES = {"float32": np.float32, "float16": np.float16, "uint8": np.uint8, "int64": np.int64}
TRITON_DTYPES = {"float32": "FP32", "float16": "FP16"}


def _client(triton):
    import tritonclient.grpc as grpcclient

    return grpcclient.InferenceServerClient(triton.grpc_url)


def _parameters(triton, name: str) -> dict:
    config = _client(triton).get_model_config(name, as_json=True)["config"]
    return {key: value["string_value"] for key, value in config["parameters"].items()}


def test_every_variant_in_the_repository_is_ready(triton, model_repository: Path) -> None:
    on_disk = sorted(p.name for p in model_repository.iterdir() if (p / "config.pbtxt").exists())
    index = {m.name: m.state for m in _client(triton).get_model_repository_index().models}
    assert sorted(VARIANTS) == on_disk
    assert {name: index.get(name) for name in on_disk} == {name: "READY" for name in on_disk}


@pytest.mark.parametrize("name", VARIANTS)
def test_variant_answers_like_onnxruntime_on_real_dicom(triton, model_repository: Path, name: str) -> None:
    import onnxruntime as ort
    import tritonclient.grpc as grpcclient

    from export.data import prepare_input

    parameters = _parameters(triton, name)
    base = parameters["variant_of"]
    assert parameters["precision"] == ("int8" if name.endswith("_int8") else "fp32")
    inputs, outputs = json.loads(parameters["inputs"]), json.loads(parameters["outputs"])
    folder = DATA_DIR / DERIVED.get(base, base) / "validation"
    with open(folder / "manifest.csv", newline="") as handle:
        cases = list(csv.DictReader(handle))[:2]
    feeds = {
        tensor["name"]: np.stack([prepare_input(folder / case[tensor["name"]], PreprocessingSpec.from_dict(tensor["preprocessing"]))[0] for case in cases])
        for tensor in inputs
    }

    requests = []
    for tensor in inputs:
        request = grpcclient.InferInput(tensor["name"], list(feeds[tensor["name"]].shape), TRITON_DTYPES[tensor["dtype"]])
        request.set_data_from_numpy(feeds[tensor["name"]])
        requests.append(request)
    answer = _client(triton).infer(name, requests)
    session = ort.InferenceSession(str(model_repository / name / "1" / parameters["onnx_model_filename"]), providers=["CPUExecutionProvider"])
    expected = session.run([o["name"] for o in outputs], feeds)

    for output, reference in zip(outputs, expected):
        served = answer.as_numpy(output["name"])
        assert served.dtype == NUMPY_DTYPES[output["dtype"]]
        assert list(served.shape) == [len(cases), *output["shape"][1:]]
        np.testing.assert_allclose(served, reference, atol=1e-5)


@pytest.mark.parametrize("name", VARIANTS)
def test_native_backend_configs_are_valid_triton_configs(model_repository: Path, name: str) -> None:
    default = text_format.Parse((model_repository / name / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    native = text_format.Parse((model_repository / name / "configs" / "onnxruntime.pbtxt").read_text(), model_config_pb2.ModelConfig())
    assert (native.name, native.backend, native.default_model_filename) == (name, "onnxruntime", "model.onnx")
    assert [i.name for i in native.input] == [i.name for i in default.input]
    assert [(o.name, o.data_type, list(o.dims)) for o in native.output] == [(o.name, o.data_type, list(o.dims)) for o in default.output]
    assert dict(native.parameters) == dict(default.parameters)
    assert not (model_repository / name / "configs" / "tensorrt.pbtxt").exists()  # no TensorRT here: SKIPPED, not faked


@pytest.mark.parametrize("name", VARIANTS)
def test_gateway_reads_every_variant(gateway, name: str) -> None:
    card = gateway.get(f"/v1/models/{name}")
    assert card.status_code == 200, card.text
    body = card.json()
    assert body["ready"] is True
    assert body["labels"][:1] in (["no_nodule"], ["background"], ["no_avid_nodule"])


@pytest.mark.parametrize("name", list(ZOO))
def test_drift_reference_feeds_the_gateway_drift_monitor(triton, name: str) -> None:
    from gateway.drift import DriftMonitor, HistogramReference

    reference = json.loads(_parameters(triton, name)["drift_reference"])
    numeric, categorical = {}, {}
    for input_name, facts in reference["inputs"].items():
        numeric[f"{input_name}.intensity"] = HistogramReference.from_dict(facts["intensity"])
        for feature, histogram in facts["geometry"].items():
            numeric[f"{input_name}.{feature}"] = HistogramReference.from_dict(histogram)
        categorical[f"{input_name}.modality"] = facts["modality_mix"]
        categorical[f"{input_name}.manufacturer"] = facts["manufacturer_mix"]
    for label, histogram in reference["predictions"]["classes"].items():
        numeric[f"prediction.{label}"] = HistogramReference.from_dict(histogram)
    monitor = DriftMonitor(name, numeric, categorical, window_size=4, min_samples=1)

    feature = f"{next(iter(reference['inputs']))}.intensity"
    edges, counts = numeric[feature].edges, numeric[feature].counts
    like_reference = np.repeat((edges[:-1] + edges[1:]) / 2, np.round(counts / counts.sum() * 10_000).astype(int))
    monitor.observe({feature: like_reference}, {})
    scores = monitor.scores()
    assert scores[feature]["psi"] < 0.1  # the reference against itself: stable
