"""The ``parameters`` of every written model config: the model card the gateway reads.

The keys, their format and the version are :mod:`contract`'s (see :mod:`contract.card`);
this module only fills a :class:`~contract.ModelCard` from an export spec and adds what the
Triton runner needs besides (``onnx_model_filename``, the ONNX file in the version folder).
"""

from __future__ import annotations

from typing import Any

from contract import CONTRACT_VERSION, ModelCard, ModelInput, ModelOutput
from contract.cascade import CascadeSpec

from ..spec import ExportSpec

__all__ = ["CONTRACT_VERSION", "gateway_parameters", "model_card"]


def model_card(
    spec: ExportSpec, *, precision: str, output_shapes: list[list[int]], report_digest: str, drift_reference: dict[str, Any] | None,
    input_quality: dict[str, Any] | None = None, export_report: dict[str, Any] | None = None,
) -> ModelCard:
    """The card of ``spec``'s base model; ``output_shapes`` include the batch axis (-1).
    An input without a modality of its own takes its preprocessing's, when that names one.
    ``input_quality``: the gate :func:`export.quality.derive_gate` derived (None: no gate);
    ``export_report``: the document written as ``export_report.json``, for the gateway to show."""
    inputs = []
    for tensor in spec.inputs:
        prep = spec.input_preprocessing(tensor.name)
        modality = tensor.modality or (prep.modalities[0] if len(prep.modalities) == 1 else None)
        inputs.append(ModelInput(tensor.name, tensor.dtype, tensor.shape, modality, prep))
    return ModelCard(
        name=spec.name,
        task=spec.task,
        description=spec.description,
        inputs=inputs,
        outputs=[ModelOutput(o.name, o.meaning, o.labels, shape, o.dtype, o.postprocessing_spec(), o.label_codes()) for o, shape in zip(spec.outputs, output_shapes)],
        preprocessing=spec.preprocessing_spec,
        max_batch_size=spec.batching.max_batch_size,
        export_report_digest=report_digest,
        drift_reference=drift_reference,
        precision=precision,
        variant_of=spec.name,
        input_quality=input_quality,
        cascade=CascadeSpec(spec.cascade.localiser_spec().name, spec.cascade.region_spec) if spec.cascade is not None else None,
        export_report=export_report,
    )


def gateway_parameters(
    spec: ExportSpec,
    *,
    precision: str,
    output_shapes: list[list[int]],
    onnx_file: str,
    report_digest: str,
    drift_reference: dict[str, Any],
    input_quality: dict[str, Any] | None = None,
    export_report: dict[str, Any] | None = None,
) -> dict[str, str]:
    """The parameters of one config: the card's, plus the runner's ONNX file name."""
    card = model_card(
        spec, precision=precision, output_shapes=output_shapes, report_digest=report_digest, drift_reference=drift_reference,
        input_quality=input_quality, export_report=export_report,
    )
    return card.to_parameters() | {"onnx_model_filename": onnx_file}
