"""The naive baseline a team writes first: FastAPI + pydicom + the PyTorch model, in-process.

One process, one uvicorn worker, one model (``MEDSERVE_BASELINE_MODEL``: a demo zoo model, or a
real-size bench model of :mod:`devtools.zoo.realsize`), built from its factory and weights, in eval mode, run eagerly under ``torch.inference_mode()`` per
request with torch's default thread count. The preprocessing is the gateway's own
(:mod:`preprocessing`, the spec of the model's export spec), so the comparison measures the
serving path, not a different image pipeline:

- 2D classifier: body ``application/dicom`` → ``pydicom.dcmread`` → ``preprocess_instance`` →
  ``model(x)`` (softmax probabilities) → labels with probabilities, highest first.
- 3D segmenter: ``multipart/form-data`` files → ``pydicom.dcmread`` each → ``preprocess_series`` →
  MONAI ``sliding_window_inference`` over the network's logits (ROI = the network input,
  Gaussian blending) → argmax → nodule volume in mL on the prepared grid.

The route reads the body on the event loop and runs decode, preprocessing and the model in
FastAPI's thread pool (what a plain ``def`` route does), so that torch, which releases the GIL,
overlaps with the next requests' parsing. Measured on the bench machine, that is the faster
and steadier of the two obvious shapes: ``MEDSERVE_BASELINE_ROUTE=inline`` runs the model on
the event loop instead (one request at a time), which reached 5-40 req/s at concurrency 16
with p99 in seconds, against 60-90 req/s for the thread pool.

    MEDSERVE_BASELINE_MODEL=ct_nodule_classifier uvicorn --factory benchmarks.baseline:create_app
"""

from __future__ import annotations

import io
import os
from typing import Any

import numpy as np
import pydicom
import torch
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from monai.inferers import sliding_window_inference

from export.spec import ExportSpec
from export.torch2onnx import load_torch_model
from devtools.zoo.realsize import REALSIZE, realsize_spec
from devtools.zoo.repository import zoo_spec
from preprocessing import preprocess_instance, preprocess_series

MODELS = ("ct_nodule_classifier", "ct_nodule_segmenter_3d", *REALSIZE)


def model_spec(name: str) -> ExportSpec:
    """The export spec of a demo zoo model or of a real-size bench model."""
    return realsize_spec(name) if name in REALSIZE else zoo_spec(name)


def _classify(model: torch.nn.Module, spec: ExportSpec, body: bytes) -> dict[str, Any]:
    ds = pydicom.dcmread(io.BytesIO(body))
    prepared = preprocess_instance(ds, spec.input_preprocessing(spec.inputs[0].name))
    with torch.inference_mode():
        probabilities = model(torch.from_numpy(prepared.array[None]))[0].numpy()
    labels = spec.outputs[0].labels
    ranked = sorted(zip(labels, probabilities.tolist()), key=lambda pair: pair[1], reverse=True)
    return {
        "model": spec.name,
        "top_label": ranked[0][0],
        "probabilities": [{"label": label, "probability": p} for label, p in ranked],
    }


def _segment(model: torch.nn.Module, spec: ExportSpec, bodies: list[bytes]) -> dict[str, Any]:
    datasets = [pydicom.dcmread(io.BytesIO(body)) for body in bodies]
    prepared = preprocess_series(datasets, spec.input_preprocessing(spec.inputs[0].name))
    roi = tuple(spec.inputs[0].shape[2:])
    with torch.inference_mode():
        logits = sliding_window_inference(
            torch.from_numpy(prepared.array[None]), roi, sw_batch_size=4, predictor=model.logits, overlap=0.25, mode="gaussian"
        )
        labels = torch.argmax(logits, dim=1)[0].numpy().astype(np.uint8)
    voxel_ml = float(np.prod(prepared.geometry.spacing_mm)) / 1000.0 if prepared.geometry else 0.0
    names = spec.outputs[0].labels
    return {
        "model": spec.name,
        "measurements": [
            {"label": name, "voxels": int((labels == value).sum()), "volume_ml": round(float((labels == value).sum()) * voxel_ml, 3)}
            for value, name in enumerate(names)
            if value > 0
        ],
    }


def create_app() -> FastAPI:
    name = os.environ.get("MEDSERVE_BASELINE_MODEL", MODELS[0])
    if name not in MODELS:
        raise ValueError(f"MEDSERVE_BASELINE_MODEL must be one of {MODELS}, got {name!r}")
    spec = model_spec(name)
    model = load_torch_model(spec).eval()
    app = FastAPI(title="baseline")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    threadpool = os.environ.get("MEDSERVE_BASELINE_ROUTE", "threadpool") != "inline"
    if spec.task == "classification":
        compute = lambda body: _classify(model, spec, body)  # noqa: E731

        @app.post("/v1/models/{model_name}/predict")
        async def classify(model_name: str, request: Request) -> dict[str, Any]:
            body = await request.body()
            return await run_in_threadpool(compute, body) if threadpool else compute(body)

    else:
        compute = lambda bodies: _segment(model, spec, bodies)  # noqa: E731

        @app.post("/v1/models/{model_name}/predict")
        async def segment(model_name: str, request: Request) -> dict[str, Any]:
            form = await request.form()
            bodies = [await upload.read() for _, upload in form.multi_items() if hasattr(upload, "read")]
            return await run_in_threadpool(compute, bodies) if threadpool else compute(bodies)

    return app
