"""onnxruntime's warnings stay off the terminal during export's onnxruntime steps (INT8
quantization with its calibration sessions, inference sessions); its errors still show."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from export.data import PreparedSet
from export.onnx2int8 import quantize_int8
from export.ort_quiet import silence_onnxruntime_logging
from export.spec import QuantizationSpec
from export.verify import onnx_outputs


@pytest.fixture(scope="module")
def unet_and_calibration(tmp_path_factory: pytest.TempPathFactory, instance_norm_unet, export_unet) -> tuple[Path, PreparedSet]:
    """The InstanceNorm UNet as ONNX (its normalisation constants are what onnxruntime's
    quantizer warns about) and two calibration volumes."""
    volumes = np.random.default_rng(0).normal(size=(2, 1, 48, 48, 48)).astype(np.float32)
    path = export_unet(instance_norm_unet(0), tmp_path_factory.mktemp("quiet") / "unet.onnx")
    return path, PreparedSet(cases=["a", "b"], inputs={"image": volumes}, sources={})


def _onnxruntime_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "onnxruntime" in r.pathname]


def test_onnxruntime_quantizer_warns_on_the_root_logger_by_itself(unet_and_calibration, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The reference: onnxruntime's quantizer, called as it comes, warns on the root logger
    once per InstanceNormalization constant — what export silences."""
    from onnxruntime.quantization import QuantFormat, quantize_static

    from export.onnx2int8 import PreparedCalibrationReader

    path, calibration = unet_and_calibration
    with caplog.at_level(logging.WARNING):
        quantize_static(str(path), str(tmp_path / "plain.onnx"), PreparedCalibrationReader(calibration), quant_format=QuantFormat.QDQ, per_channel=True)
    noise = _onnxruntime_records(caplog)
    assert len(noise) >= 6 and {r.levelno for r in noise} == {logging.WARNING}  # one per normalisation constant, and advice


def test_export_int8_and_inference_print_nothing_from_onnxruntime(
    unet_and_calibration, tmp_path: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    path, calibration = unet_and_calibration
    capfd.readouterr()
    with caplog.at_level(logging.DEBUG):
        int8 = quantize_int8(path, tmp_path / "int8.onnx", calibration, QuantizationSpec())
        (probabilities,) = onnx_outputs(int8, calibration.feeds(), ["probabilities"])

    assert probabilities.shape == (2, 3, 48, 48, 48)
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""
    assert _onnxruntime_records(caplog) == []


def test_errors_from_onnxruntime_still_pass_and_the_root_logger_is_left_as_found(caplog: pytest.LogCaptureFixture) -> None:
    import onnxruntime

    root = logging.getLogger()
    handlers, filters = list(root.handlers), list(root.filters)
    source = str(Path(onnxruntime.__file__).parent / "quantization" / "quantize.py")
    with caplog.at_level(logging.WARNING), silence_onnxruntime_logging():
        for level in (logging.WARNING, logging.ERROR):
            root.handle(root.makeRecord("root", level, source, 1, f"onnxruntime says {logging.getLevelName(level)}", None, None))
        logging.warning("our own warning")
    assert [r.getMessage() for r in caplog.records] == ["onnxruntime says ERROR", "our own warning"]
    assert (root.handlers, root.filters) == (handlers, filters)
