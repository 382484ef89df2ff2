"""The ``parameters`` of every written model config: the contract the gateway reads.

Keys and their JSON values (contract "1"; keys may be added, never changed)::

    medserve_contract      "1"
    task                   "classification" | "segmentation-2d" | "segmentation-3d" | "multi-input"
    description            free text
    inputs                 [{"name", "shape": [-1, ...], "dtype", "modality", "preprocessing": {...}}]
    outputs                [{"name", "meaning", "labels", "shape": [-1, ...], "dtype"}]
    preprocessing          the first input's PreprocessingSpec.to_dict()
    onnx_model_filename    the ONNX file in the version folder
    export_report_digest   sha256 of export_report.json beside the config
    drift_reference        see :mod:`export.drift_reference`
    precision              "fp32" | "int8" | "fp16" (the artifact this config serves)
    variant_of             the base (FP32, default) model's name
"""

from __future__ import annotations

from typing import Any

from ..spec import ExportSpec

__all__ = ["CONTRACT_VERSION", "gateway_parameters"]

CONTRACT_VERSION = "1"


def gateway_parameters(
    spec: ExportSpec,
    *,
    precision: str,
    output_shapes: list[list[int]],
    onnx_file: str,
    report_digest: str,
    drift_reference: dict[str, Any],
) -> dict[str, object]:
    """The JSON documents of one config; ``output_shapes`` include the batch axis (-1)."""
    inputs = []
    for tensor in spec.inputs:
        prep = spec.input_preprocessing(tensor.name)
        modality = tensor.modality or (prep.modalities[0] if len(prep.modalities) == 1 else None)
        inputs.append(
            {"name": tensor.name, "shape": tensor.shape, "dtype": tensor.dtype, "modality": modality, "preprocessing": prep.to_dict()}
        )
    outputs = [
        {"name": o.name, "meaning": o.meaning, "labels": o.labels, "shape": shape, "dtype": o.dtype}
        for o, shape in zip(spec.outputs, output_shapes)
    ]
    return {
        "medserve_contract": CONTRACT_VERSION,
        "task": spec.task.value,
        "description": spec.description,
        "inputs": inputs,
        "outputs": outputs,
        "preprocessing": spec.preprocessing_spec.to_dict(),
        "onnx_model_filename": onnx_file,
        "export_report_digest": report_digest,
        "drift_reference": drift_reference,
        "precision": precision,
        "variant_of": spec.name,
    }
