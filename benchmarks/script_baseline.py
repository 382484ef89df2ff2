"""The "script" baseline: one request's steps in one Python process, nothing served.

What a team gets by running the exported model in a script, the floor the served path is
judged against (issue 17: served ≤ 1.2× the script for a 3D network at concurrency 1). Each
step is medserve's own or the library the served path uses, so the difference is serving
alone (HTTP, upload parsing, gRPC, the event loop, metrics and audit):

1. ``pydicom.dcmread`` of each body (bytes in memory, as the gateway holds an upload); a series
   sent to the gateway as a ZIP is answered from the same ZIP's bytes, its members read with
   :mod:`zipfile` (:func:`zip_members`) — the step a script given that file takes too;
2. the model's preprocessing spec, read from its Triton config (the ``contract.ModelCard``
   the gateway reads), by :func:`preprocessing.preprocess_instance` / ``preprocess_series``;
3. onnxruntime on the exported ``model.onnx`` with the session options of Triton's runner
   (``export/triton/onnx_runner.py``: ``ort_intra_op_threads`` from the config, 0 = one per
   core; one inter-op thread; spinning as configured);
4. for 3D: the gateway's sliding window (:mod:`gateway.sliding_window`, same patch grid,
   Gaussian blending, one-hot votes for a labels output, ``batch_size`` patches per run), the
   output's post-processing spec, the labels put back on the source grid
   (:func:`postprocessing.regrid.labels_to_grid`) and measured there
   (:func:`gateway.outputs.measurements.measure_labels`);
5. for a cascade's card (``cascade``, e.g. deepbet): the gateway's steps of
   :mod:`gateway.tasks.cascade`, which are :mod:`postprocessing.cascade`'s — the series read by
   :func:`preprocessing.open_instance` and loaded once, the localiser's ``model.onnx`` on all of
   it, its region, the crop prepared for and run through the served model's ``model.onnx``, the
   labels pasted back and put on the source grid, measured there (the input quality gates, a
   few statistics, are not run);
6. the answer serialised to JSON bytes.

    python -m benchmarks.script_baseline MODEL_DIR FILE_OR_FOLDER... [--repeat N]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import time
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pydicom

from contract import ModelCard, OutputMeaning, Task
from export.triton.config import parse
from postprocessing import to_labels
from postprocessing.cascade import labels_on_source, localiser_input, localiser_region, stage_input, stage_labels
from postprocessing.regrid import labels_to_grid
from preprocessing import SeriesPlan, open_instance, plan_series, preprocess_instance, preprocess_series
from preprocessing.pipeline import load_series_volume

#: Patches per onnxruntime run: the gateway's default ``MEDSERVE_SLIDING_WINDOW_BATCH_SIZE``.
SLIDING_WINDOW_BATCH = 4
SLIDING_WINDOW_OVERLAP = 0.25


@dataclass(frozen=True)
class ScriptModel:
    """An exported Triton model directory opened for in-process use: its card and an
    onnxruntime session configured as Triton's runner configures it; a cascade's card also
    opens its localiser, the model of that name beside it in the repository."""

    card: ModelCard
    session: Any  # onnxruntime.InferenceSession
    localiser: "ScriptModel | None" = None

    @classmethod
    def open(cls, model_dir: Path, version: str = "1") -> "ScriptModel":
        import onnxruntime as ort

        config = parse((model_dir / "config.pbtxt").read_text())
        card = ModelCard.from_triton_config({
            "name": config.name,
            "max_batch_size": config.max_batch_size,
            "parameters": {key: {"string_value": value} for key, value in config.parameters.items()},
        })
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(config.parameters.get("ort_intra_op_threads", "0"))
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", config.parameters.get("ort_allow_spinning", "0"))
        session = ort.InferenceSession(str(model_dir / version / "model.onnx"), options, providers=["CPUExecutionProvider"])
        localiser = cls.open(model_dir.parent / card.cascade.localiser, version) if card.cascade is not None else None
        return cls(card, session, localiser)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """The first output of the card for one batch of inputs."""
        output = self.card.outputs[0].name
        return self.session.run([output], {self.card.inputs[0].name: batch})[0]


def classify(model: ScriptModel, body: bytes) -> dict[str, Any]:
    """One instance → labels with probabilities, highest first."""
    ds = pydicom.dcmread(io.BytesIO(body))
    prepared = preprocess_instance(ds, model.card.preprocessing)
    probabilities = model.run(prepared.array[None])[0]
    ranked = sorted(zip(model.card.outputs[0].labels, probabilities.tolist()), key=lambda pair: pair[1], reverse=True)
    return {
        "model": model.card.name,
        "top_label": ranked[0][0],
        "probabilities": [{"label": label, "probability": p} for label, p in ranked],
    }


def cascade_labels(model: ScriptModel, bodies: Sequence[bytes]) -> tuple[np.ndarray, SeriesPlan]:
    """A cascade on one series, as :func:`gateway.tasks.cascade.cascade_labels` runs it: the
    uint8 labels on the source grid (frames in slice order) and the series' plan."""
    first, output = model.localiser, model.card.outputs[0]
    assert first is not None and model.card.cascade is not None
    plan = plan_series([open_instance(body) for body in bodies])
    base = load_series_volume(plan, first.card.preprocessing)
    first_input = localiser_input(base, first.card.preprocessing)
    found = localiser_region(_class_scores(first.run(first_input.array[None])), first_input,
                             first.card.outputs[0].postprocessing, model.card.cascade.region, base)
    if found.box is None:
        raise ValueError(f"the localiser {first.card.name!r} found no region in this series")
    second = stage_input(base, model.card.preprocessing, found)
    on_base = stage_labels(_class_scores(model.run(second.array[None])), second, output.postprocessing, found.box, base.values.shape[:3])
    return labels_on_source(on_base, base, output.postprocessing), plan


def _class_scores(result: np.ndarray) -> np.ndarray:
    """One item's [C, d, h, w] float32 class scores from a [1, C, d, h, w] answer."""
    return np.asarray(result[0], dtype=np.float32)


def segment(model: ScriptModel, bodies: Sequence[bytes]) -> dict[str, Any]:
    """One series → per-class measurements on the source grid (and the grid's shape)."""
    from gateway.outputs.measurements import measure_labels
    from gateway.sliding_window import sliding_window_inference

    output = model.card.outputs[0]
    if model.card.cascade is not None:
        labels_map, plan = cascade_labels(model, bodies)
        measurements = measure_labels(labels_map, plan.affine_lps, output.labels)
        return {"model": model.card.name, "measurements": [asdict(m) for m in measurements], "shape": list(labels_map.shape)}
    prepared = preprocess_series([pydicom.dcmread(io.BytesIO(body)) for body in bodies], model.card.preprocessing)
    roi = tuple(model.card.inputs[0].shape[2:])
    volume = prepared.array
    if tuple(volume.shape[1:]) == roi:
        model_labels = _labels(model, volume[None])[0]
    else:
        async def votes(batch: np.ndarray) -> np.ndarray:
            result = model.run(batch)
            if output.meaning != OutputMeaning.SEGMENTATION_LABELS:
                return result.astype(np.float32)
            labels = result.reshape(len(batch), *roi).astype(np.int64)
            classes = np.arange(len(output.labels)).reshape(1, -1, *([1] * len(roi)))
            return (classes == labels[:, None]).astype(np.float32)

        scores, _ = asyncio.run(sliding_window_inference(
            volume, roi, votes, batch_size=SLIDING_WINDOW_BATCH, overlap=SLIDING_WINDOW_OVERLAP, concurrency=1
        ))
        model_labels = to_labels(scores, output.postprocessing)
    assert prepared.geometry is not None and prepared.source_geometry is not None
    source = prepared.source_geometry
    labels_map = labels_to_grid(model_labels, prepared.geometry.affine_lps, source.affine_lps, source.shape)
    measurements = measure_labels(labels_map, source.affine_lps, output.labels)
    return {"model": model.card.name, "measurements": [asdict(m) for m in measurements], "shape": list(labels_map.shape)}


def _labels(model: ScriptModel, batch: np.ndarray) -> np.ndarray:
    output = model.card.outputs[0]
    result = model.run(batch)
    if output.meaning == OutputMeaning.SEGMENTATION_LABELS:
        return result.reshape(len(batch), *batch.shape[2:]).astype(np.uint8)
    return np.stack([to_labels(item.astype(np.float32, copy=False), output.postprocessing) for item in result])


def answer(model: ScriptModel, bodies: Sequence[bytes]) -> bytes:
    """One request end to end: the JSON answer as bytes."""
    if model.card.task == Task.CLASSIFICATION:
        if len(bodies) != 1:
            raise ValueError("a classifier takes one instance per request")
        result = classify(model, bodies[0])
    elif model.card.task == Task.SEGMENTATION_3D:
        result = segment(model, bodies)
    else:
        raise ValueError(f"the script baseline runs classification and segmentation-3d models, not {model.card.task}")
    return json.dumps(result).encode()


def zip_members(archive: bytes) -> list[bytes]:
    """Every file of a ZIP, in archive order, read by :mod:`zipfile` (what a script does)."""
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        return [opened.read(info) for info in opened.infolist() if not info.is_dir()]


def timed_answers(model: ScriptModel, bodies: Sequence[bytes], repeat: int) -> list[float]:
    """Seconds per request of ``repeat`` requests, one after the other."""
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        answer(model, bodies)
        seconds.append(time.perf_counter() - started)
    return seconds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("inputs", nargs="+", type=Path, help="DICOM files, or one folder of a series")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    paths = sorted(args.inputs[0].glob("*.dcm")) if args.inputs[0].is_dir() else args.inputs
    model = ScriptModel.open(args.model_dir)
    bodies = [p.read_bytes() for p in paths]
    print(answer(model, bodies).decode()[:400])
    seconds = timed_answers(model, bodies, args.repeat)
    print(f"{model.card.name}: p50 {np.median(seconds) * 1000:.1f} ms over {args.repeat} requests")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
