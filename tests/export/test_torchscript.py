"""A TorchScript archive whose Python source is gone exports, verifies and serves in the real
tritonserver, end to end."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from export.pipeline import ExportOptions, export_model
from export.spec import Precision, load_spec
from devtools.tritonserver import TritonPorts, TritonServer
from preprocessing import PreprocessingSpec, preprocess_instance, read_dataset

SOURCE = textwrap.dedent(
    """
    import torch


    class HiddenNet(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 8, 3, stride=2, padding=1)
            self.head = torch.nn.Linear(8, 2)

        def forward(self, image: torch.Tensor) -> torch.Tensor:
            features = torch.relu(self.conv(image)).mean(dim=(2, 3))
            return torch.softmax(self.head(features), dim=1)
    """
)
BUILD = "import sys, torch; sys.path.insert(0, sys.argv[1]); import hidden_net; torch.manual_seed(0); torch.jit.script(hidden_net.HiddenNet().eval()).save(sys.argv[2])"


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    """Built in another process from a module that is deleted afterwards."""
    source_dir = tmp_path / "source"
    source_dir.mkdir()
    (source_dir / "hidden_net.py").write_text(SOURCE)
    path = tmp_path / "hidden_net.pt"
    subprocess.run([sys.executable, "-c", BUILD, str(source_dir), str(path)], check=True, capture_output=True)
    shutil.rmtree(source_dir)
    return path


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_torchscript_archive_without_source_exports_and_serves(archive: Path, tiny_classifier_spec, classifier_data: Path, tmp_path: Path) -> None:
    import tritonclient.http as http

    assert importlib.util.find_spec("hidden_net") is None
    spec = load_spec(tiny_classifier_spec(name="hidden_net", source={"kind": "torchscript", "archive": str(archive)}))
    repository = tmp_path / "repository"
    result = export_model(spec, repository, log=lambda _: None, options=ExportOptions(precisions=[Precision.FP32]))
    assert result.report.steps[0].detail == "torchscript"

    dicom = classifier_data / "validation" / "slice_0001.dcm"
    prepared = preprocess_instance(read_dataset(dicom.read_bytes()), PreprocessingSpec.from_dict(spec.preprocessing or {})).array[None]
    expected = torch.jit.load(str(archive))(torch.from_numpy(prepared)).detach().numpy()

    with TritonServer(repository, tmp_path / "triton", ports=TritonPorts.free(), poll_seconds=0) as server:
        client = http.InferenceServerClient(server.http_url.removeprefix("http://"))
        assert client.is_model_ready("hidden_net")
        config = client.get_model_config("hidden_net")
        parameters = {key: value["string_value"] for key, value in config["parameters"].items()}
        assert (parameters["task"], parameters["precision"], parameters["variant_of"]) == ("classification", "fp32", "hidden_net")
        assert json.loads(parameters["outputs"])[0]["labels"] == ["no_nodule", "nodule"]
        request = http.InferInput("image", list(prepared.shape), "FP32")
        request.set_data_from_numpy(prepared)
        answer = client.infer("hidden_net", [request]).as_numpy("probabilities")

    np.testing.assert_allclose(answer, expected, atol=1e-5)
