"""The demo zoo: specs agree with the trainers, weights are small and reproducible, and the
demo repository holds every zoo model with its INT8 variant."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from export.spec import Precision, Task
from devtools.zoo import ct_nodule_classifier, ct_nodule_segmenter, ct_nodule_segmenter_3d, ct_pet_nodule_classifier
from devtools.zoo.datasets import WRITERS
from devtools.zoo.repository import ZOO, ensure_demo_repository, zoo_spec
from devtools.zoo.train import TRAINERS, WEIGHTS_DIR

MODULES = {
    "ct_nodule_classifier": ct_nodule_classifier,
    "ct_nodule_segmenter": ct_nodule_segmenter,
    "ct_nodule_segmenter_3d": ct_nodule_segmenter_3d,
    "ct_pet_nodule_classifier": ct_pet_nodule_classifier,
}
TASKS = {
    "ct_nodule_classifier": Task.CLASSIFICATION,
    "ct_nodule_segmenter": Task.SEGMENTATION_2D,
    "ct_nodule_segmenter_3d": Task.SEGMENTATION_3D,
    "ct_pet_nodule_classifier": Task.MULTI_INPUT,
}


def test_every_zoo_model_has_a_trainer_a_writer_and_a_spec() -> None:
    assert set(ZOO) == set(TRAINERS) == set(WRITERS) == set(MODULES)
    for name in ZOO:
        spec = zoo_spec(name)
        assert (spec.name, spec.task) == (name, TASKS[name])
        assert spec.precisions == [Precision.FP32, Precision.FP16, Precision.INT8]
        assert spec.calibration is not None and spec.calibration.samples >= 64


@pytest.mark.parametrize("name", sorted(MODULES))
def test_spec_preprocessing_is_what_the_model_was_trained_with(name: str) -> None:
    spec, module = zoo_spec(name), MODULES[name]
    if name == "ct_pet_nodule_classifier":
        assert spec.input_preprocessing("ct") == module.CT_PREPROCESSING
        assert spec.input_preprocessing("pet") == module.PET_PREPROCESSING
    else:
        assert spec.preprocessing_spec == module.PREPROCESSING


@pytest.mark.parametrize("name", sorted(MODULES))
def test_committed_weights_are_small_and_fit_the_network(name: str) -> None:
    weights = WEIGHTS_DIR / f"{name}.pt"
    assert weights.stat().st_size < 10 * 1024 * 1024
    MODULES[name].build_model().load_state_dict(torch.load(weights, weights_only=True))
    metrics = json.loads((WEIGHTS_DIR / f"{name}.metrics.json").read_text())
    assert metrics["seed"] == 0
    assert metrics.get("validation_auc", metrics.get("validation_dice")) > 0.8


@pytest.mark.parametrize(
    ("module", "counts"),
    [
        (ct_nodule_classifier, {"train_count": 8, "validation_count": 4, "epochs": 1}),
        (ct_nodule_segmenter, {"train_count": 4, "validation_count": 2, "epochs": 1}),
    ],
)
def test_training_is_reproducible_from_its_seed(module, counts: dict) -> None:
    first = module.train(seed=3, log=lambda _: None, **counts)
    second = module.train(seed=3, log=lambda _: None, **counts)
    for key, value in first.state_dict.items():
        assert torch.equal(value, second.state_dict[key]), key


@pytest.mark.parametrize(
    ("name", "columns"),
    [
        ("ct_nodule_classifier", ["image", "label"]),
        ("ct_nodule_segmenter", ["image", "mask"]),
        ("ct_nodule_segmenter_3d", ["volume", "mask"]),
        ("ct_pet_nodule_classifier", ["ct", "pet", "label"]),
    ],
)
def test_writers_produce_manifests_naming_the_model_inputs(name: str, columns: list[str], tmp_path: Path) -> None:
    manifest = WRITERS[name](tmp_path, 2, 1)
    with open(manifest, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == columns and len(rows) == 2
    spec = zoo_spec(name)
    assert [t.name for t in spec.inputs] == [c for c in columns if c not in ("label", "mask")]
    for row in rows:
        assert all((tmp_path / row[c]).exists() for c in columns if c != "label")
        if "mask" in row:
            mask = np.load(tmp_path / row["mask"])
            assert mask.dtype == np.uint8 and list(mask.shape) == spec.outputs[0].shape[1:]


def test_demo_repository_holds_every_zoo_model_and_its_int8_variant(model_repository: Path) -> None:
    for name in ZOO:
        report = json.loads((model_repository / name / "export_report.json").read_text())
        statuses = {(v["precision"], v["runtime"]): v["status"] for v in report["variants"]}
        assert statuses == {
            ("fp32", "onnxruntime"): "written",
            ("int8", "onnxruntime"): "written",
            ("fp16", "tensorrt"): "skipped",
            ("int8", "tensorrt"): "skipped",
        }, name
        int8 = next(v for v in report["variants"] if v["precision"] == "int8" and v["runtime"] == "onnxruntime")
        assert int8["metric_drop"] <= report["max_metric_drop"]
        assert (model_repository / f"{name}_int8" / "config.pbtxt").exists()


def test_demo_repository_is_not_exported_again_when_current(model_repository: Path) -> None:
    assert ensure_demo_repository(model_repository, log=lambda _: None) == []
