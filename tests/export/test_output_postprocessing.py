"""An output's ``postprocessing`` in the export spec: validated at load time, written into the card."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from export.spec import ExportSpecError, load_spec
from export.triton.parameters import model_card
from postprocessing import PostprocessingSpec

ZOO = Path(__file__).resolve().parents[2] / "devtools" / "zoo" / "specs"
POSTPROCESSING = {"steps": [{"op": "threshold", "label": 1, "probability": 0.4}, {"op": "largest_component"}, {"op": "fill_holes"}], "grid": "model"}


PROBABILITIES = {"meaning": "segmentation_probabilities", "dtype": "float32", "shape": [-1, 2, 32, 96, 96]}


def _absolute(node, base: Path):
    """The spec's relative paths made absolute against ``base``, so that a copy loads anywhere."""
    if isinstance(node, dict):
        return {k: str((base / v).resolve()) if k in ("state_dict", "dicom_dir", "manifest") else _absolute(v, base) for k, v in node.items()}
    return node


def _spec_file(tmp_path: Path, zoo_spec: str, **output_changes) -> Path:
    data = _absolute(yaml.safe_load((ZOO / zoo_spec).read_text()), ZOO)
    data["outputs"][0].update(output_changes)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def spec_path(tmp_path: Path):
    """The 3D demo segmenter's spec, its output turned into class probabilities and changed."""
    return lambda **changes: _spec_file(tmp_path, "ct_nodule_segmenter_3d.yaml", **(PROBABILITIES | changes))


def test_a_segmentation_output_carries_its_postprocessing_into_the_card(spec_path) -> None:
    spec = load_spec(spec_path(postprocessing=POSTPROCESSING))
    assert spec.outputs[0].postprocessing_spec() == PostprocessingSpec.from_dict(POSTPROCESSING)
    shapes = [[-1, len(spec.outputs[0].labels), *spec.inputs[0].shape[2:]]]
    card = model_card(spec, precision="fp32", output_shapes=shapes, report_digest="a" * 64, drift_reference=None)
    assert card.outputs[0].postprocessing == PostprocessingSpec.from_dict(POSTPROCESSING)


def test_without_postprocessing_the_card_has_none(spec_path) -> None:
    spec = load_spec(spec_path())
    shapes = [[-1, len(spec.outputs[0].labels), *spec.inputs[0].shape[2:]]]
    assert model_card(spec, precision="fp32", output_shapes=shapes, report_digest="a" * 64, drift_reference=None).outputs[0].postprocessing is None


@pytest.mark.parametrize(
    ("postprocessing", "match"),
    [
        ({"steps": [{"op": "threshold", "label": 2, "probability": 0.5}]}, r"outputs\.0.*threshold names label 2, but the output has 2 labels"),
        ({"steps": [{"op": "largest_component", "labels": [5]}]}, r"largest_component names label 5"),
        ({"steps": [{"op": "dilate", "mm": -1}]}, r"outputs\.0.*postprocessing: mm:"),
        ({"steps": [{"op": "erode", "mm": 1}, {"op": "argmax"}]}, r"postprocessing: steps:"),
        ({"grid": "world"}, r"postprocessing: grid:"),
    ],
)
def test_an_invalid_postprocessing_fails_the_load_naming_the_key(spec_path, postprocessing: dict, match: str) -> None:
    with pytest.raises(ExportSpecError, match=match):
        load_spec(spec_path(postprocessing=postprocessing))


def test_postprocessing_is_for_segmentation_outputs_only(tmp_path: Path) -> None:
    path = _spec_file(tmp_path, "ct_nodule_classifier.yaml", postprocessing={"steps": [{"op": "argmax"}]})
    with pytest.raises(ExportSpecError, match="postprocessing applies to segmentation outputs only"):
        load_spec(path)


def test_a_threshold_needs_probabilities_not_labels(tmp_path: Path) -> None:
    path = _spec_file(tmp_path, "ct_nodule_segmenter_3d.yaml", postprocessing={"steps": [{"op": "threshold", "label": 1, "probability": 0.5}]})
    with pytest.raises(ExportSpecError, match="threshold needs class probabilities"):
        load_spec(path)
    assert load_spec(_spec_file(tmp_path, "ct_nodule_segmenter_3d.yaml", postprocessing={"steps": [{"op": "fill_holes"}]})).outputs[0].postprocessing
