"""PyTorch → ONNX: loading the trained model, export with a dynamic batch axis, checker."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from export.errors import ExportFailed
from export.spec import load_spec
from export.torch2onnx import export_onnx, load_torch_model, torch_outputs
from export.verify import onnx_outputs


def test_export_is_checker_clean_with_a_dynamic_batch_axis(tiny_classifier_spec, tmp_path: Path) -> None:
    spec = load_spec(tiny_classifier_spec())
    model = load_torch_model(spec)
    path = export_onnx(model, spec, tmp_path / "model.onnx")

    graph = onnx.load(str(path))
    onnx.checker.check_model(graph, full_check=True)
    assert graph.opset_import[0].version == 17
    assert graph.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert graph.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    for batch in (1, 5):  # any batch size runs, and agrees with PyTorch
        feeds = {"image": np.random.default_rng(batch).random((batch, 1, 128, 128), dtype=np.float32)}
        (got,) = onnx_outputs(path, feeds, ["probabilities"])
        (expected,) = torch_outputs(model, feeds)
        np.testing.assert_allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize(
    ("source", "match"),
    [
        ({"factory": "devtools.zoo.no_such_module:build"}, r"cannot import model factory 'devtools.zoo.no_such_module:build'"),
        ({"factory": "devtools.zoo.ct_nodule_classifier:no_such_callable"}, r"cannot import model factory"),
        ({"kwargs": {"depth": 3}}, r"cannot build the model with devtools.zoo.ct_nodule_classifier:NoduleClassifier"),
        ({"kwargs": {"widths": [8, 8, 8, 8]}}, r"state_dict does not fit devtools.zoo.ct_nodule_classifier:NoduleClassifier"),
        ({"state_dict": "/nonexistent/weights.pt"}, r"state_dict file not found: /nonexistent/weights.pt"),
    ],
)
def test_python_source_failures(tiny_classifier_spec, source: dict, match: str) -> None:
    spec = load_spec(tiny_classifier_spec())
    changed = spec.model_copy(update={"source": spec.source.model_copy(update=source)})
    with pytest.raises(ExportFailed, match=match):
        load_torch_model(changed)


def test_torchscript_source_failures(tiny_classifier_spec, tmp_path: Path) -> None:
    missing = load_spec(tiny_classifier_spec(source={"kind": "torchscript", "archive": str(tmp_path / "absent.pt")}))
    with pytest.raises(ExportFailed, match=r"TorchScript archive not found: .*absent.pt"):
        load_torch_model(missing)

    (tmp_path / "broken.pt").write_bytes(b"not a zip archive")
    broken = load_spec(tiny_classifier_spec(source={"kind": "torchscript", "archive": str(tmp_path / "broken.pt")}))
    with pytest.raises(ExportFailed, match=r"cannot load TorchScript archive .*broken.pt"):
        load_torch_model(broken)


def test_declared_outputs_must_be_what_the_model_produces(tiny_classifier_spec, tmp_path: Path) -> None:
    outputs = [
        {"name": "probabilities", "meaning": "class_probabilities", "labels": ["no_nodule", "nodule"]},
        {"name": "heatmap", "meaning": "activation_map"},
    ]
    spec = load_spec(tiny_classifier_spec(outputs=outputs))
    with pytest.raises(ExportFailed, match=r"the model returns 1 output\(s\); the spec declares 2: \['probabilities', 'heatmap'\]"):
        export_onnx(load_torch_model(spec), spec, tmp_path / "model.onnx")
