"""From a trained PyTorch model to verified ONNX, INT8 and TensorRT in the Triton model
repository, with a report::

    from export import ExportOptions, export_model, load_spec

    result = export_model(load_spec("spec.yaml"), Path("model_repository"))

One module per stage: :mod:`~export.spec` (the YAML spec), :mod:`~export.data` (DICOM →
prepared inputs), :mod:`~export.torch2onnx`, :mod:`~export.verify`, :mod:`~export.onnx2int8`,
:mod:`~export.onnx2trt`, :mod:`~export.benchmark`, :mod:`~export.metrics`,
:mod:`~export.drift_reference`, :mod:`~export.report`, :mod:`~export.triton` (model
directories and configs), tied together top to bottom by :mod:`~export.pipeline`, which walks
the table of export variants in :mod:`~export.variants` (ONNX FP32 / INT8, TensorRT FP16 /
INT8). What the gateway reads of a model is the versioned card of the ``contract`` package.
"""

from .errors import ExportDataError, ExportError, ExportFailed, ExportSpecError
from .pipeline import ExportOptions, ExportResult, export_model
from .spec import ExportSpec, Precision, Task, load_spec

__all__ = [
    "ExportDataError",
    "ExportError",
    "ExportFailed",
    "ExportOptions",
    "ExportResult",
    "ExportSpec",
    "ExportSpecError",
    "Precision",
    "Task",
    "export_model",
    "load_spec",
]
