"""The export variants table: names, sources, renderings, and one judgement for any row."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest

from export import pipeline, variants
from export.onnx2trt import Engine
from export.report import VariantStatus
from export.spec import Precision, load_spec
from export.triton.config import ONNXRUNTIME, PYTHON_RUNNER, RENDERINGS, TENSORRT, parse, render
from export.triton.model_dir import VariantDirectory, write_configs
from export.variants import VARIANTS, Artifact, Runtime, VariantSteps
from export.verify import onnx_outputs

BY_KEY = {v.key: v for v in VARIANTS}


def test_one_reference_and_every_source_comes_before_its_variant() -> None:
    assert [v.key for v in VARIANTS if v.is_reference] == ["onnx_fp32"]
    assert len(BY_KEY) == len(VARIANTS)
    for index, variant in enumerate(VARIANTS):
        if variant.built_from is not None:
            assert variant.built_from in [v.key for v in VARIANTS[:index]]


def test_an_engine_joins_the_model_directory_of_the_onnx_model_it_is_built_from() -> None:
    for variant in VARIANTS:
        if variant.runtime == Runtime.TENSORRT:
            assert variant.built_from is not None
            assert variant.model_name("m") == BY_KEY[variant.built_from].model_name("m")
            assert variant.needs_gpu and variant.renderings == (TENSORRT,)


@pytest.mark.parametrize(
    ("precision", "name"),
    [
        ("fp32", "m"),  # the default model
        ("fp16", "m"),  # a TensorRT engine beside the FP32 ONNX model
        ("int8", "m_int8"),  # QDQ ONNX and its engine
    ],
)
def test_model_name(precision: str, name: str) -> None:
    assert variants.model_name("m", precision) == name


def test_model_names_default_first() -> None:
    assert variants.model_names("m") == ["m", "m_int8"]


@pytest.mark.parametrize(
    ("precision", "engines", "renderings"),
    [
        ("fp32", set(), (PYTHON_RUNNER, ONNXRUNTIME)),  # CPU host: no engines
        ("fp32", {"fp16"}, (PYTHON_RUNNER, ONNXRUNTIME, TENSORRT)),
        ("int8", {"int8"}, (PYTHON_RUNNER, ONNXRUNTIME, TENSORRT)),
    ],
)
def test_renderings_follow_the_variants_a_directory_holds(precision: str, engines: set[str], renderings: tuple) -> None:
    assert variants.renderings_for(precision, engines) == renderings


def test_every_written_config_renders_again_identically_and_without_batching(tiny_classifier_spec, tmp_path: Path) -> None:
    spec = load_spec(tiny_classifier_spec())
    directory = VariantDirectory(name="m", directory=tmp_path / "m", precision="fp32")
    directory.version_dir.mkdir(parents=True)
    directory.engines.append(Engine(file="model.fp16.sm90.plan", compute_capability="9.0", precision="fp16"))
    write_configs(directory, spec, [[-1, 2]], {"precision": "fp32", "inputs": [{"name": "image"}], "medserve_contract": "1"})

    for rendering in RENDERINGS:
        text = (directory.directory / rendering.file).read_text()
        assert render(parse(text)) == text
        unbatched = render(parse(text), dynamic_batching=False)
        assert unbatched.splitlines() == [line for line in text.splitlines() if not line.startswith("dynamic_batching")]


ZOO_WEIGHTS = Path(__file__).resolve().parents[2] / "devtools" / "zoo" / "weights" / "ct_nodule_classifier.pt"


def _swapped_classes(path: Path, feeds: dict[str, np.ndarray], names: list[str]) -> list[np.ndarray]:
    """Each case's class probabilities swapped: a trained classifier's AUC turns into 1 - AUC."""
    return [values[:, ::-1] for values in onnx_outputs(path, feeds, names)]


def _copy_of_fp32(job: variants.Conversion) -> Artifact:
    assert job.source is not None
    job.directory.version_dir.mkdir(parents=True, exist_ok=True)
    return Artifact(Path(shutil.copyfile(job.source, job.directory.onnx_path)), "copied")


@pytest.mark.parametrize(
    ("outputs", "status"),
    [
        (onnx_outputs, VariantStatus.WRITTEN),  # same answers as FP32: within budget
        (_swapped_classes, VariantStatus.REJECTED),  # classes swapped: the metric gate rejects it
    ],
)
def test_a_new_variant_is_one_row_and_passes_the_same_judgement(
    tiny_classifier_spec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, outputs, status: VariantStatus
) -> None:
    row = dataclasses.replace(
        BY_KEY["onnx_int8"], key="onnx_fp16", precision=Precision.FP16, label="ONNX FP16", model_suffix="_fp16",
        convert=_copy_of_fp32, outputs=outputs, needs_calibration=False,
        steps=VariantSteps("copy_fp16", "judge_fp16", "judge_fp16", "benchmark_fp16"),
    )
    table = (BY_KEY["onnx_fp32"], row)
    monkeypatch.setattr(pipeline, "VARIANTS", table)
    monkeypatch.setattr(variants, "VARIANTS", table)
    trained = {"kind": "python", "factory": "devtools.zoo.ct_nodule_classifier:build_model", "state_dict": str(ZOO_WEIGHTS)}
    spec = load_spec(tiny_classifier_spec(source=trained, precisions=["fp32", "fp16"], calibration=None))
    repository = tmp_path / "repository"
    result = pipeline.export_model(spec, repository, log=lambda _: None)

    record = result.report.variant("fp16")
    assert record is not None and record.status == status and record.model_name == "tiny_classifier_fp16"
    steps = {s.name: s for s in result.report.steps}
    assert ["copy_fp16", "judge_fp16", "benchmark_fp16"] <= list(steps)
    assert steps["copy_fp16"].detail == "copied"
    assert steps["judge_fp16"].detail.startswith("auc ") and "(budget 0.01)" in steps["judge_fp16"].detail
    if status == VariantStatus.WRITTEN:
        assert record.metric_drop == 0.0 and record.throughput_per_s_batch8
        assert sorted(p.name for p in repository.iterdir()) == ["tiny_classifier", "tiny_classifier_fp16"]
        assert parse((repository / "tiny_classifier_fp16" / "config.pbtxt").read_text()).parameters["precision"] == "fp16"
    else:
        assert record.reason.startswith("auc dropped by ") and record.file is None
        assert "; rejected: auc dropped by" in steps["judge_fp16"].detail
        assert steps["benchmark_fp16"].detail.startswith("FP16 variant rejected: auc dropped by")
        assert [p.name for p in repository.iterdir()] == ["tiny_classifier"]
