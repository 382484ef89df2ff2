"""ONNX FP32 → INT8 QDQ ONNX by onnxruntime's static quantizer, calibrated on prepared DICOM.

Explicit quantization (QuantizeLinear/DequantizeLinear pairs around each quantized tensor) is
what both onnxruntime on CPU and TensorRT on GPU execute, so one calibrated artifact serves
both. Calibration data are DICOM run through the model's own preprocessing spec, so the
activation ranges are those the served model will see.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from onnxruntime.quantization import CalibrationDataReader
from tqdm import tqdm

from .data import PreparedSet
from .errors import ExportFailed
from .ort_quiet import silence_onnxruntime_logging
from .spec import QuantizationSpec

__all__ = ["PreparedCalibrationReader", "quantize_int8"]

#: Cases per calibration inference: fewer onnxruntime calls than one by one, same ranges.
CALIBRATION_BATCH = 8


class PreparedCalibrationReader(CalibrationDataReader):
    """Feeds the prepared calibration cases to onnxruntime's calibrator in small batches."""

    def __init__(self, prepared: PreparedSet, progress: bool = False, label: str = "calibration") -> None:
        self.prepared = prepared
        self.starts = list(range(0, len(prepared), CALIBRATION_BATCH))
        self.progress = progress
        self.label = label
        self.rewind()

    def get_next(self) -> dict[str, np.ndarray] | None:
        start = next(self._iterator, None)
        if start is None:
            self._bar.close()
            return None
        self._bar.update(min(CALIBRATION_BATCH, len(self.prepared) - start))
        return self.prepared.feeds(start, start + CALIBRATION_BATCH)

    def rewind(self) -> None:
        self._iterator = iter(self.starts)
        self._bar = tqdm(total=len(self.prepared), desc=self.label, unit="case", disable=not self.progress, leave=False)


def _narrow_convolutions(graph, below: int) -> set[str]:
    """Conv nodes whose weight [out, in, ...] has fewer than ``below`` channels both ways."""
    weights = {i.name: list(i.dims) for i in graph.initializer}
    return {
        n.name
        for n in graph.node
        if n.op_type == "Conv" and n.input[1] in weights and max(weights[n.input[1]][:2]) < below
    }


def _excluded_nodes(model_path: Path, options: QuantizationSpec) -> list[str]:
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    by_type = {n.name for n in graph.node if n.op_type in set(options.exclude_op_types)}
    unknown = sorted(set(options.exclude_nodes) - {n.name for n in graph.node})
    if unknown:
        raise ExportFailed(f"quantization.exclude_nodes names nodes the graph does not have: {', '.join(unknown)}")
    return sorted(by_type | set(options.exclude_nodes) | _narrow_convolutions(graph, options.float_below_channels))


def quantize_int8(
    fp32_path: Path,
    int8_path: Path,
    calibration: PreparedSet,
    options: QuantizationSpec,
    progress: bool = False,
    label: str = "INT8 calibration",
) -> Path:
    """Write the QDQ model of ``fp32_path`` to ``int8_path``; ``onnx.checker`` must accept it.
    ``label`` names the progress bar."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    types = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}
    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy, "percentile": CalibrationMethod.Percentile}
    with tempfile.TemporaryDirectory(prefix="medserve-int8-") as scratch, silence_onnxruntime_logging():
        prepared_model = Path(scratch) / "preprocessed.onnx"
        # onnxruntime's own pre-processing: constant folding and shape inference, so that the
        # quantizer sees fused Conv+BN and knows every tensor's type. Symbolic shape inference
        # is skipped: it cannot follow Resize on a dynamic batch axis.
        quant_pre_process(str(fp32_path), str(prepared_model), skip_symbolic_shape=True)
        int8_path.parent.mkdir(parents=True, exist_ok=True)
        quantize_static(
            str(prepared_model),
            str(int8_path),
            PreparedCalibrationReader(calibration, progress, label=label),
            quant_format=QuantFormat.QDQ,
            per_channel=options.per_channel,
            activation_type=types[options.activation_type],
            weight_type=types[options.weight_type],
            calibrate_method=methods[options.calibration_method],
            nodes_to_exclude=_excluded_nodes(prepared_model, options),
            extra_options={
                "ActivationSymmetric": options.activation_symmetric,
                "WeightSymmetric": options.weight_symmetric,
            },
        )
    try:
        onnx.checker.check_model(str(int8_path), full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportFailed(f"onnx.checker rejected the INT8 model: {exc}") from exc
    return int8_path
