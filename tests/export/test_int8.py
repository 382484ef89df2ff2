"""INT8: static QDQ quantization with onnxruntime, calibrated on prepared DICOM."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from export.data import PreparedSet, load_calibration_set
from export.errors import ExportFailed
from export.onnx2int8 import CALIBRATION_BATCH, PreparedCalibrationReader, quantize_int8
from export.spec import QuantizationSpec, load_spec
from export.torch2onnx import export_onnx, load_torch_model
from export.verify import onnx_outputs


@pytest.fixture(scope="module")
def fp32_and_calibration(tmp_path_factory, classifier_data, tiny_classifier_weights) -> tuple[Path, PreparedSet]:
    import yaml

    folder = tmp_path_factory.mktemp("int8")
    spec_data = {
        "name": "tiny",
        "task": "classification",
        "source": {"kind": "python", "factory": "devtools.zoo.ct_nodule_classifier:NoduleClassifier", "kwargs": {"widths": [8, 8, 16, 16]}, "state_dict": str(tiny_classifier_weights)},
        "inputs": [{"name": "image", "shape": [-1, 1, 128, 128]}],
        "outputs": [{"name": "probabilities", "meaning": "class_probabilities", "labels": ["no_nodule", "nodule"]}],
        "preprocessing": {"modalities": ["CT"], "window": {"preset": "lung"}, "output_size": [128, 128]},
        "calibration": {"dicom_dir": str(classifier_data / "calibration")},
        "validation": {"dicom_dir": str(classifier_data / "validation"), "manifest": str(classifier_data / "validation" / "manifest.csv")},
    }
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec_data))
    spec = load_spec(folder / "spec.yaml")
    return export_onnx(load_torch_model(spec), spec, folder / "fp32.onnx"), load_calibration_set(spec)


def _op_types(path: Path) -> list[str]:
    return [node.op_type for node in onnx.load(str(path)).graph.node]


def test_qdq_model_with_per_channel_weights(fp32_and_calibration, tmp_path: Path) -> None:
    fp32, calibration = fp32_and_calibration
    int8 = quantize_int8(fp32, tmp_path / "int8.onnx", calibration, QuantizationSpec())

    graph = onnx.load(str(int8)).graph
    onnx.checker.check_model(onnx.load(str(int8)), full_check=True)
    ops = [n.op_type for n in graph.node]
    assert ops.count("QuantizeLinear") > 0 and ops.count("DequantizeLinear") > ops.count("QuantizeLinear")
    initializers = {i.name: i for i in graph.initializer}
    weight_dequantizers = [n for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] in initializers and initializers[n.input[0]].data_type == onnx.TensorProto.INT8]
    assert weight_dequantizers, "conv weights are stored as int8"
    per_channel = [n for n in weight_dequantizers if len(initializers[n.input[1]].dims) == 1 and initializers[n.input[1]].dims[0] > 1]
    assert per_channel, "weights carry one scale per output channel"
    (probabilities,) = onnx_outputs(int8, calibration.feeds(0, 8), ["probabilities"])
    assert np.isfinite(probabilities).all()


def test_excluded_op_types_stay_float(fp32_and_calibration, tmp_path: Path) -> None:
    fp32, calibration = fp32_and_calibration
    int8 = quantize_int8(fp32, tmp_path / "int8.onnx", calibration, QuantizationSpec(exclude_op_types=["Softmax", "Gemm"]))

    graph = onnx.load(str(int8)).graph
    floats = {i.name for i in graph.initializer if i.data_type == onnx.TensorProto.FLOAT}
    (gemm,) = [n for n in graph.node if n.op_type == "Gemm"]
    (softmax,) = [n for n in graph.node if n.op_type == "Softmax"]
    assert gemm.input[1] in floats  # its weights were not quantized
    assert not [n for n in graph.node if n.op_type == "QuantizeLinear" and softmax.output[0] in n.input]
    (probabilities,) = onnx_outputs(int8, calibration.feeds(0, 8), ["probabilities"])
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)  # full-precision probabilities


def test_unknown_excluded_nodes_are_named(fp32_and_calibration, tmp_path: Path) -> None:
    fp32, calibration = fp32_and_calibration
    with pytest.raises(ExportFailed, match=r"quantization.exclude_nodes names nodes the graph does not have: /no/such/Conv"):
        quantize_int8(fp32, tmp_path / "int8.onnx", calibration, QuantizationSpec(exclude_nodes=["/no/such/Conv"]))


def test_the_reader_feeds_every_case_once_per_pass(fp32_and_calibration) -> None:
    _, calibration = fp32_and_calibration
    reader = PreparedCalibrationReader(calibration)
    for _ in range(2):  # onnxruntime may rewind and read again
        batches = list(iter(reader.get_next, None))
        assert [len(b["image"]) for b in batches] == [CALIBRATION_BATCH] * (len(calibration) // CALIBRATION_BATCH)
        np.testing.assert_array_equal(np.concatenate([b["image"] for b in batches]), calibration.inputs["image"])
        reader.rewind()


def test_narrow_convolutions_stay_float(fp32_and_calibration, tmp_path: Path) -> None:
    """With widths 8, 8, 16, 16, a threshold of 9 channels keeps the 1→8 and 8→8 convolutions
    float and quantizes the 8→16 and 16→16 ones."""
    fp32, calibration = fp32_and_calibration
    int8 = quantize_int8(fp32, tmp_path / "int8.onnx", calibration, QuantizationSpec(float_below_channels=9))

    graph = onnx.load(str(int8)).graph
    initializers = {i.name: i for i in graph.initializer}
    producers = {output: node for node in graph.node for output in node.output}
    float_widths, int8_widths = set(), set()
    for conv in (n for n in graph.node if n.op_type == "Conv"):
        weight = initializers.get(conv.input[1])
        if weight is not None and weight.data_type == onnx.TensorProto.FLOAT:
            float_widths.add(max(weight.dims[:2]))
        else:
            quantized = initializers[producers[conv.input[1]].input[0]]
            int8_widths.add(max(quantized.dims[:2]))
    assert float_widths == {8} and int8_widths == {16}
