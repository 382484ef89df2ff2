"""What the serving bench compares: the models it drives, the client counts, and the variants
(a) baseline to (e) INT8 behind two gateways, as one table.

Each variant names the precision of the Triton model it serves (none for the baseline, which
runs PyTorch in-process), so the served model name is derived here, not re-spelled by the
servers or the report.
"""

from __future__ import annotations

from dataclasses import dataclass

from export.spec import Precision
from export.variants import model_name

CLASSIFIER = "ct_nodule_classifier"
SEGMENTER_3D = "ct_nodule_segmenter_3d"
MODELS = (CLASSIFIER, SEGMENTER_3D)
CONCURRENCY = (1, 4, 16, 32)


@dataclass(frozen=True)
class Variant:
    key: str
    label: str
    description: str
    precision: Precision | None = None  # of the Triton model served; None: the in-process baseline


VARIANTS = (
    Variant("a", "baseline", "FastAPI + pydicom + PyTorch eager in-process, 1 uvicorn worker"),
    Variant("b", "no batching", "gateway + Triton, FP32, config without dynamic_batching", Precision.FP32),
    Variant("c", "dynamic batching", "gateway + Triton, FP32, dynamic batching (as deployed)", Precision.FP32),
    Variant("d", "INT8", "gateway + Triton, the _int8 variant, dynamic batching", Precision.INT8),
    Variant("e", "INT8, 2 gateways", "(d) behind two gateway processes, clients split between them as a Service splits connections", Precision.INT8),
)
BY_KEY = {v.key: v for v in VARIANTS}


def served_name(variant: str, model: str) -> str:
    """The model name the variant's server answers for (the baseline: the zoo name itself)."""
    precision = BY_KEY[variant].precision
    return model if precision is None else model_name(model, precision)


def measured_variants(model: str, variants: tuple[str, ...], served: list[str], replica_models: tuple[str, ...]) -> list[str]:
    """The variants of ``variants`` that apply to ``model``: the INT8 ones only when the
    repository holds more than the FP32 model (``served``), (e) only for ``replica_models``."""
    return [
        v for v in variants
        if (v not in ("d", "e") or len(served) > 1) and (v != "e" or model in replica_models)
    ]
