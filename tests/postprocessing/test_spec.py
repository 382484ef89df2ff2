"""The post-processing spec: JSON round trip, defaults, and every invalid spec refused with its key named."""

from __future__ import annotations

import json

import pytest

from postprocessing import PostprocessingSpec, PostprocessingStep
from preprocessing.errors import InvalidSpec

FULL = {
    "steps": [
        {"op": "threshold", "label": 1, "probability": 0.5},
        {"op": "threshold", "label": 2, "probability": 0.3},
        {"op": "largest_component", "labels": [1], "connectivity": 3},
        {"op": "fill_holes", "labels": None, "connectivity": 1},
        {"op": "remove_small_objects", "min_size_mm3": 50.0, "labels": [1, 2], "connectivity": 2},
        {"op": "dilate", "mm": 2.0, "labels": [2]},
        {"op": "erode", "mm": 1.5, "labels": None},
    ],
    "grid": "source",
}


def test_a_spec_round_trips_through_json() -> None:
    spec = PostprocessingSpec.from_dict(json.loads(json.dumps(FULL)))
    assert spec.to_dict() == FULL
    assert PostprocessingSpec.from_dict(spec.to_dict()) == spec
    assert [s.op for s in spec.score_steps] == ["threshold", "threshold"]
    assert [s.op for s in spec.label_steps] == ["largest_component", "fill_holes", "remove_small_objects", "dilate", "erode"]


def test_a_step_writes_only_the_keys_its_op_takes_with_connectivity_defaults() -> None:
    assert PostprocessingStep("argmax").to_dict() == {"op": "argmax"}
    assert PostprocessingStep.from_dict({"op": "largest_component"}).to_dict() == {"op": "largest_component", "labels": None, "connectivity": 3}
    assert PostprocessingStep.from_dict({"op": "fill_holes"}).connectivity == 1
    assert PostprocessingStep.from_dict({"op": "remove_small_objects", "min_size_mm3": 10}).connectivity == 1
    assert PostprocessingSpec.from_dict({}) == PostprocessingSpec()
    assert PostprocessingSpec().grid == "model"


@pytest.mark.parametrize(
    ("document", "key"),
    [
        ({"steps": [{"op": "median"}]}, "op"),
        ({"steps": [{"op": "threshold", "label": 0, "probability": 0.5}]}, "label"),
        ({"steps": [{"op": "threshold", "label": 1, "probability": 1.0}]}, "probability"),
        ({"steps": [{"op": "threshold", "label": 1, "probability": 0.0}]}, "probability"),
        ({"steps": [{"op": "threshold", "label": 1.5, "probability": 0.5}]}, "label"),
        ({"steps": [{"op": "threshold", "label": 1}]}, "probability"),
        ({"steps": [{"op": "argmax", "labels": [1]}]}, "labels"),
        ({"steps": [{"op": "largest_component", "connectivity": 4}]}, "connectivity"),
        ({"steps": [{"op": "largest_component", "labels": [0]}]}, "labels"),
        ({"steps": [{"op": "largest_component", "labels": []}]}, "labels"),
        ({"steps": [{"op": "fill_holes", "labels": 1}]}, "labels"),
        ({"steps": [{"op": "remove_small_objects"}]}, "min_size_mm3"),
        ({"steps": [{"op": "remove_small_objects", "min_size_mm3": -1}]}, "min_size_mm3"),
        ({"steps": [{"op": "dilate", "mm": 0}]}, "mm"),
        ({"steps": [{"op": "erode", "mm": "2"}]}, "mm"),
        ({"steps": [{"op": "fill_holes"}, {"op": "argmax"}]}, "steps"),
        ({"steps": [{"op": "threshold", "label": 1, "probability": 0.5}, {"op": "erode", "mm": 1}, {"op": "threshold", "label": 2, "probability": 0.5}]}, "steps"),
        ({"steps": [{"op": "argmax"}, {"op": "threshold", "label": 1, "probability": 0.5}]}, "steps"),
        ({"steps": {"op": "argmax"}}, "steps"),
        ({"steps": ["argmax"]}, "steps"),
        ({"grid": "patient"}, "grid"),
        ({"grid": "model", "order": 1}, "order"),
    ],
)
def test_invalid_specs_are_refused_naming_the_key(document: dict, key: str) -> None:
    with pytest.raises(InvalidSpec, match=rf"postprocessing: {key}:"):
        PostprocessingSpec.from_dict(document)


def test_a_spec_is_not_a_mapping() -> None:
    with pytest.raises(InvalidSpec, match="postprocessing: postprocessing:"):
        PostprocessingSpec.from_dict(["argmax"])
