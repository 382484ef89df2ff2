"""The segmentation tasks run an output's post-processing spec, against the real Triton.

The demo models' real cards, read from Triton, get a post-processing spec
(``dataclasses.replace`` on their segmentation output); the task's answer must equal the spec
applied, independently, to the unprocessed labels: on the source grid to the answer without the
spec, on the model grid to the ONNX model's own labels put back on the source grid.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import numpy as np
import pytest

from contract import ModelCard
from devtools.dicomgen import ct_dataset, write_ct_series
from devtools.phantoms import chest_slice, chest_volume
from gateway.audit import AuditRecord
from gateway.catalog import parse_model_card
from gateway.config import Settings
from gateway.stages import StageClock
from gateway.tasks.context import InferenceContext
from gateway.tasks.segmentation import SegmentationResult, segment_slices, segment_volume
from gateway.triton import TritonClient
from gateway.uploads import DicomPart
from postprocessing import PostprocessingSpec, refine
from postprocessing.regrid import labels_to_grid
from preprocessing import open_instance, plan_series, preprocess_instance, preprocess_series
from preprocessing.geometry import spacing_of

SEG_2D = "ct_nodule_segmenter"
SEG_3D = "ct_nodule_segmenter_3d"
STEPS = [{"op": "dilate", "mm": 3.0}, {"op": "fill_holes"}, {"op": "largest_component"}]


def _spec(grid: str) -> PostprocessingSpec:
    return PostprocessingSpec.from_dict({"steps": STEPS, "grid": grid})


def _run(triton, model: str, parts: list[DicomPart], spec: PostprocessingSpec | None) -> SegmentationResult:
    """The model's task on ``parts``, its card read from Triton and given ``spec``."""

    async def run() -> SegmentationResult:
        client = TritonClient(triton.grpc_url, 60, 10, shared_memory=False)
        try:
            card: ModelCard = parse_model_card(await client.model_config(model))
            outputs = [dataclasses.replace(o, postprocessing=spec) for o in card.outputs]
            card = dataclasses.replace(card, outputs=outputs)
            context = InferenceContext(
                parts, card, client, StageClock(model), AuditRecord("r", "k", "/predict"), "r", Settings(triton_grpc_url=triton.grpc_url),
            )
            return await (segment_slices if model == SEG_2D else segment_volume)(context)
        finally:
            await client.close()

    return asyncio.run(run())


def _onnx_labels(model_repository: Path, model: str, array: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(model_repository / model / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: array[None]})[0][0].astype(np.uint8)


@pytest.fixture(scope="module")
def series(tmp_path_factory) -> list[DicomPart]:
    """A CT series of 32 x 96 x 96 voxels of 2 mm with nodules: exactly one patch of the 3D model."""
    volume, _ = chest_volume(np.random.default_rng(5), slices=32, size=96, nodules=4, field_of_view_mm=192.0)
    paths = write_ct_series(tmp_path_factory.mktemp("series"), volume, spacing_mm=(2.0, 2.0, 2.0))
    return [DicomPart(p.read_bytes()) for p in paths]


def test_3d_source_grid_steps_refine_the_unprocessed_answer(triton, series) -> None:
    plain = _run(triton, SEG_3D, series, None)
    processed = _run(triton, SEG_3D, series, _spec("source"))
    expected = refine(plain.labels_map, _spec("source"), spacing_of(plain.affine_lps))
    assert plain.labels_map.any() and not np.array_equal(expected, plain.labels_map)
    np.testing.assert_array_equal(processed.labels_map, expected)
    assert processed.applied["postprocessing"] == _spec("source").to_dict() and "postprocessing" not in plain.applied
    assert processed.measurements[0].voxels == int((expected == 1).sum())


def test_3d_model_grid_steps_run_before_the_labels_go_back(triton, series, model_repository) -> None:
    plan = plan_series([open_instance(part.data) for part in series])
    card = ModelCard.from_triton_config(_config(model_repository, SEG_3D))
    prepared = preprocess_series(plan, card.preprocessing)
    assert prepared.array.shape[1:] == tuple(card.inputs[0].shape[2:]), "one patch: no sliding window"
    model_labels = _onnx_labels(model_repository, SEG_3D, prepared.array)
    model_affine = prepared.geometry.affine_lps
    plain = _run(triton, SEG_3D, series, None)
    np.testing.assert_array_equal(plain.labels_map, labels_to_grid(model_labels, model_affine, plan.affine_lps, plan.shape))

    processed = _run(triton, SEG_3D, series, _spec("model"))
    refined = refine(model_labels, _spec("model"), spacing_of(model_affine))
    assert not np.array_equal(refined, model_labels)
    np.testing.assert_array_equal(processed.labels_map, labels_to_grid(refined, model_affine, plan.affine_lps, plan.shape))


def test_2d_model_grid_steps_run_on_the_prepared_slice_at_its_spacing(triton, model_repository) -> None:
    phantom = chest_slice(np.random.default_rng(21), size=512, nodules=1)
    data = _bytes(ct_dataset(phantom.hu, pixel_spacing_mm=phantom.spacing_mm, slice_thickness_mm=2.5))
    card = ModelCard.from_triton_config(_config(model_repository, SEG_2D))
    model_labels = _onnx_labels(model_repository, SEG_2D, preprocess_instance(open_instance(data), card.preprocessing).array)
    spec = PostprocessingSpec.from_dict({"steps": [{"op": "dilate", "mm": 6.0}], "grid": "model"})
    refined = refine(model_labels, spec, tuple(s * 512 / 128 for s in phantom.spacing_mm))  # a 128-pixel slice of the 512-pixel field
    assert model_labels.any() and not np.array_equal(refined, model_labels)
    processed = _run(triton, SEG_2D, [DicomPart(data)], spec)
    np.testing.assert_array_equal(processed.labels_map[0], np.kron(refined, np.ones((4, 4), dtype=np.uint8)))
    plain = _run(triton, SEG_2D, [DicomPart(data)], None)
    np.testing.assert_array_equal(plain.labels_map[0], np.kron(model_labels, np.ones((4, 4), dtype=np.uint8)))


def test_2d_source_grid_steps_run_at_the_source_pixel_spacing(triton, model_repository) -> None:
    phantom = chest_slice(np.random.default_rng(21), size=512, nodules=1)
    data = _bytes(ct_dataset(phantom.hu, pixel_spacing_mm=phantom.spacing_mm, slice_thickness_mm=2.5))
    spec = PostprocessingSpec.from_dict({"steps": [{"op": "erode", "mm": 2.0}], "grid": "source"})
    plain = _run(triton, SEG_2D, [DicomPart(data)], None)
    processed = _run(triton, SEG_2D, [DicomPart(data)], spec)
    expected = refine(plain.labels_map[0], spec, tuple(phantom.spacing_mm))
    assert plain.labels_map.any() and not np.array_equal(expected, plain.labels_map[0])
    np.testing.assert_array_equal(processed.labels_map[0], expected)


def _bytes(dataset) -> bytes:
    import io

    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _config(model_repository: Path, model: str) -> dict:
    """The model's config as Triton serves it, read from the repository's config.pbtxt."""
    from google.protobuf import json_format, text_format
    from tritonclient.grpc import model_config_pb2

    message = text_format.Parse((model_repository / model / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    return json_format.MessageToDict(message, preserving_proto_field_name=True)
