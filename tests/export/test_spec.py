"""The export spec: every way a spec can be wrong fails at load time, naming the field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from export.spec import ExportSpecError, Precision, Task, load_spec, parse_precisions

CT_PREP = {"modalities": ["CT"], "window": {"preset": "lung"}, "output_size": [128, 128], "layout": "CHW", "dtype": "float32"}
PET_PREP = {"modalities": ["PT"], "suv": "bw", "window": {"center": 5.0, "width": 10.0}, "output_size": [64, 64], "layout": "CHW", "dtype": "float32"}
BASE: dict[str, Any] = {
    "name": "chest_model",
    "task": "classification",
    "source": {"kind": "python", "factory": "devtools.zoo.ct_nodule_classifier:build_model", "state_dict": "weights.pt"},
    "inputs": [{"name": "image", "shape": [-1, 1, 128, 128], "dtype": "float32", "modality": "CT"}],
    "outputs": [{"name": "probabilities", "meaning": "class_probabilities", "labels": ["no", "yes"]}],
    "preprocessing": CT_PREP,
    "calibration": {"dicom_dir": "calibration"},
    "validation": {"dicom_dir": "validation", "manifest": "validation/manifest.csv"},
}


def _write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _set(path: str, value: Any) -> Callable[[dict], None]:
    """A mutation setting ``a.b.0.c`` (``value`` None deletes the key)."""

    def mutate(spec: dict) -> None:
        *parents, last = path.split(".")
        node: Any = spec
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        if value is None:
            del node[int(last) if last.isdigit() else last]
        else:
            node[int(last) if last.isdigit() else last] = value

    return mutate


def _fusion(spec: dict) -> None:
    spec["task"] = "multi-input"
    spec["inputs"] = [
        {"name": "ct", "shape": [-1, 1, 128, 128], "preprocessing": CT_PREP},
        {"name": "pet", "shape": [-1, 1, 64, 64], "preprocessing": PET_PREP},
    ]


def _add_second_input(spec: dict) -> None:
    spec["inputs"].append({"name": "other", "shape": [-1, 1, 128, 128]})


def test_a_valid_spec_loads_with_paths_resolved_against_its_folder(tmp_path: Path) -> None:
    spec = load_spec(_write(tmp_path, BASE))

    assert spec.task is Task.CLASSIFICATION
    assert spec.source.state_dict == (tmp_path / "weights.pt").resolve()
    assert spec.validation.manifest == (tmp_path / "validation" / "manifest.csv").resolve()
    assert spec.calibration is not None and spec.calibration.samples == 64
    assert spec.precisions == [Precision.FP32, Precision.FP16, Precision.INT8]
    assert spec.accuracy_budget.max_metric_drop == 0.01
    assert spec.preprocessing_spec.output_size == (128, 128)


def test_multi_input_inputs_carry_their_own_preprocessing(tmp_path: Path) -> None:
    data = copy.deepcopy(BASE)
    _fusion(data)
    spec = load_spec(_write(tmp_path, data))

    assert spec.input_preprocessing("pet").suv == "bw"
    assert spec.input_preprocessing("ct").window is not None and spec.input_preprocessing("ct").window.preset == "lung"
    assert spec.preprocessing_spec == spec.input_preprocessing("ct")  # the top-level one is the first input's


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (_set("name", "Chest Model"), r"name: String should match pattern"),
        (_set("task", "detection"), r"task: Input should be 'classification'"),
        (_set("source.factory", "devtools.zoo.ct_nodule_classifier.build_model"), r"factory must look like 'package.module:callable'"),
        (_set("source", {"kind": "onnx", "file": "m.onnx"}), r"source: Input tag 'onnx' found using 'kind' does not match"),
        (_set("inputs.0.shape", [1, 1, 128, 128]), r"inputs.0.shape: .*dynamic batch axis first"),
        (_set("inputs.0.name", "1image"), r"inputs.0.name: String should match pattern"),
        (_add_second_input, r"classification model takes exactly 1 input, the spec lists 2"),
        (lambda s: (_fusion(s), s["inputs"].pop()), r"multi-input model needs at least 2 inputs"),
        (lambda s: (_fusion(s), s["inputs"][1].pop("preprocessing")), r"needs its own preprocessing; missing for pet"),
        (_set("task", "segmentation-3d"), r"segmentation-3d input is \[-1, C, D, H, W\]"),
        (_set("preprocessing.colour", "grey"), r"preprocessing: unknown spec keys: colour"),
        (_set("preprocessing.output_size", [64, 64]), r"output_size \[64, 64\] differs from the input's spatial shape \[128, 128\]"),
        (_set("preprocessing.output_size", None), r"must fix output_size to \[128, 128\]"),
        (_set("preprocessing.dtype", "float16"), r"preprocessing dtype float16 differs from the input dtype float32"),
        (_set("inputs.0.modality", "MR"), r"modality MR is not among the preprocessing modalities \['CT'\]"),
        (_set("preprocessing", None), r"preprocessing: required unless every input carries its own"),
        (_set("outputs.0.labels", []), r"class_probabilities needs labels for at least 2 classes"),
        (_set("outputs.0.codes", {"maybe": {"category": ["SCT", "1", "a"], "type": ["SCT", "2", "b"]}}), r"codes: 'maybe' not among the output's labels"),
        (_set("outputs.0.codes", {"yes": {"category": ["SCT", "1", "a"]}}), r"codes.yes: type missing"),
        (_set("outputs.0.codes", {"yes": {"category": ["SCT", "1"], "type": ["SCT", "2", "b"]}}), r"codes.yes.category: expected \[scheme designator, code value, code meaning\]"),
        (_set("outputs.0", {"name": "p", "meaning": "class_probabilities", "labels": ["a", "b"], "dtype": "uint8"}), r"only segmentation_labels may have an integer dtype"),
        (_set("outputs.0", {"name": "m", "meaning": "segmentation_labels", "labels": ["bg", "fg"]}), r"segmentation_labels must have dtype uint8 or int64"),
        (_set("outputs.0", {"name": "m", "meaning": "segmentation_labels", "labels": ["bg", "fg"], "dtype": "uint8"}), r"first output of a classification model must be one of"),
        (_set("task", "segmentation-2d"), r"first output of a segmentation-2d model must be one of"),
        (_set("outputs.0.name", "image"), r"tensor names must be unique, repeated: image"),
        (_set("calibration", None), r"int8 is among the precisions, so calibration DICOM are required"),
        (_set("calibration.samples", 0), r"calibration.samples: Input should be greater than or equal to 1"),
        (_set("precisions", ["int8"]), r"fp32 must be among the precisions"),
        (_set("precisions", ["fp32", "bf16"]), r"precisions.1: Input should be 'fp32', 'fp16' or 'int8'"),
        (_set("accuracy_budget", {"max_metric_drop": 0}), r"accuracy_budget.max_metric_drop: Input should be greater than 0"),
        (_set("tolerance", {"fp32_abs": -1}), r"tolerance.fp32_abs: Input should be greater than 0"),
        (_set("quantization", {"calibration_method": "kl"}), r"quantization.calibration_method: Input should be 'minmax'"),
        (_set("batching", {"max_batch_size": 4, "preferred_batch_sizes": [8]}), r"preferred_batch_sizes must lie in 1..max_batch_size"),
        (_set("tolerance", {"min_class_dice": 1.5}), r"tolerance.min_class_dice: Input should be less than or equal to 1"),
        (_set("opset", 13), r"opset: Input should be greater than or equal to 17"),
        (_set("validation", None), r"validation: Field required"),
        (_set("validation.manifest", None), r"validation.manifest: Field required"),
        (_set("colour", "grey"), r"colour: Extra inputs are not permitted"),
    ],
)
def test_invalid_specs_name_the_field(tmp_path: Path, mutate: Callable[[dict], Any], match: str) -> None:
    data = copy.deepcopy(BASE)
    mutate(data)
    with pytest.raises(ExportSpecError, match=match):
        load_spec(_write(tmp_path, data))


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (None, r"spec file not found"),  # no file at all
        ("name: [unclosed", r"not valid YAML"),
        ("- a list\n- not a mapping\n", r"the spec must be a YAML mapping"),
    ],
)
def test_unreadable_spec_files(tmp_path: Path, content: str | None, match: str) -> None:
    path = tmp_path / "spec.yaml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ExportSpecError, match=match):
        load_spec(path)


def test_a_3d_segmentation_input_may_leave_its_size_to_the_sliding_window(tmp_path: Path) -> None:
    data = copy.deepcopy(BASE)
    data["task"] = "segmentation-3d"
    data["inputs"][0]["shape"] = [-1, 1, 32, 96, 96]
    data["outputs"] = [{"name": "labels", "meaning": "segmentation_labels", "labels": ["bg", "nodule"], "dtype": "uint8"}]
    data["preprocessing"] = {"modalities": ["CT"], "window": {"preset": "lung"}, "spacing_mm": [2.0, 2.0, 2.0], "layout": "CDHW"}
    spec = load_spec(_write(tmp_path, data))
    assert spec.preprocessing_spec.output_size is None


def test_tensorrt_settings_are_not_a_load_error_but_reported_for_a_tensorrt_build(tmp_path: Path) -> None:
    data = copy.deepcopy(BASE) | {"tensorrt": {"opt_batch_size": 64}}
    spec = load_spec(_write(tmp_path, data))  # a CPU-only export must not fail on them
    assert spec.tensorrt_problems() == ["tensorrt.opt_batch_size must not exceed batching.max_batch_size"]
    assert load_spec(_write(tmp_path, BASE)).tensorrt_problems() == []


def test_precision_overrides_apply_before_validation(tmp_path: Path) -> None:
    data = copy.deepcopy(BASE)
    data.pop("calibration")  # int8 listed, no calibration data: invalid as written
    with pytest.raises(ExportSpecError, match="int8 is among the precisions"):
        load_spec(_write(tmp_path, data))
    assert load_spec(_write(tmp_path, data), {"precisions": ["fp32"]}).precisions == [Precision.FP32]


def test_overrides_replace_top_level_keys(tmp_path: Path) -> None:
    spec = load_spec(_write(tmp_path, BASE), {"precisions": ["fp32"], "calibration": None})
    assert spec.precisions == [Precision.FP32]
    assert spec.calibration is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("fp32,int8", [Precision.FP32, Precision.INT8]),
        ("int8", [Precision.FP32, Precision.INT8]),  # fp32 is the reference, always added
        (" FP32 , fp16 ", [Precision.FP32, Precision.FP16]),
    ],
)
def test_parse_precisions(text: str, expected: list[Precision]) -> None:
    assert parse_precisions(text) == expected


def test_parse_precisions_names_the_unknown_one() -> None:
    with pytest.raises(ExportSpecError, match=r"--precision: 'bf16' is not a valid Precision; choose from fp32, fp16, int8"):
        parse_precisions("fp32,bf16")


def test_label_codes_go_from_the_spec_into_the_card(tmp_path: Path) -> None:
    from contract.codes import Code, LabelCodes
    from export.triton.parameters import model_card

    data = copy.deepcopy(BASE)
    nodule = {"category": ["SCT", "49755003", "Morphologically abnormal structure"], "type": ["SCT", "27925004", "Nodule"], "site": ["SCT", "39607008", "Lung"]}
    data["outputs"][0]["codes"] = {"yes": nodule}
    spec = load_spec(_write(tmp_path, data))
    card = model_card(spec, precision="fp32", output_shapes=[[-1, 2]], report_digest="0" * 64, drift_reference=None)
    assert card.outputs[0].codes == {
        "yes": LabelCodes(Code("SCT", "49755003", "Morphologically abnormal structure"), Code("SCT", "27925004", "Nodule"), Code("SCT", "39607008", "Lung"))
    }
