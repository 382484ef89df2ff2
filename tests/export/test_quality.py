"""The input quality gate export derives: ranges from what the prepared cases look like,
widened by the margin, written into the card (and read back by the gateway) and the report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from contract import ModelCard
from export.data import load_validation_set, prepare_input
from export.errors import ExportSpecError
from export.quality import derive_gate, feature_ranges
from export.report import ExportReport
from export.spec import QualityGateSpec, load_spec
from export.triton.parameters import model_card


def _triton_config(parameters: dict[str, str]) -> dict:
    return {"name": "m", "max_batch_size": 8, "parameters": {k: {"string_value": v} for k, v in parameters.items()}}


class TestFeatureRanges:
    CASES = [
        {"p1": -1000.0, "p99": 400.0, "mean": -300.0, "std": 450.0, "foreground_fraction": 0.4, "spacing_min_mm": 0.7, "extent_max_mm": 350.0},
        {"p1": -1024.0, "p99": 200.0, "mean": -500.0, "std": 300.0, "foreground_fraction": 0.6, "spacing_min_mm": 0.9, "extent_max_mm": 460.0},
    ]

    def test_spreads_and_sizes_widen_by_a_factor(self):
        ranges = feature_ranges(self.CASES, margin=1.0)
        assert ranges["std"] == [150.0, 900.0]
        assert ranges["spacing_min_mm"] == [0.35, 1.8]
        assert ranges["extent_max_mm"] == [175.0, 920.0]

    def test_foreground_fraction_down_to_a_share_of_the_least_seen(self):
        assert feature_ranges(self.CASES, margin=1.0)["foreground_fraction"] == [0.2, 1.0]
        assert feature_ranges(self.CASES, margin=0.0)["foreground_fraction"] == [0.4, 1.0]

    def test_locations_widen_by_a_share_of_the_intensity_range(self):
        ranges = feature_ranges(self.CASES, margin=0.5)  # span 400 - (-1024) = 1424, half of it 712
        assert ranges["p1"] == [-1024.0 - 712.0, -1000.0 + 712.0]
        assert ranges["p99"] == [200.0 - 712.0, 400.0 + 712.0]
        assert ranges["mean"] == [-500.0 - 712.0, -300.0 + 712.0]

    def test_a_feature_some_case_lacks_gets_no_range(self):
        cases = [self.CASES[0], {k: v for k, v in self.CASES[1].items() if k != "spacing_min_mm"}]
        assert "spacing_min_mm" not in feature_ranges(cases, margin=1.0)

    def test_disabled_gate_is_none(self):
        assert derive_gate(QualityGateSpec(enabled=False), []) is None


class TestFromPreparedCases:
    def test_every_case_lies_within_and_a_blank_slice_does_not(self, tiny_classifier_spec, classifier_data: Path):
        spec = load_spec(tiny_classifier_spec(quality_gate={"action": "reject", "margin": 0.5}))
        validation = load_validation_set(spec)
        gate = derive_gate(spec.quality_gate, [validation.sources])
        assert gate is not None and (gate["action"], gate["margin"], gate["cases"]) == ("reject", 0.5, {"image": 16})
        ranges = gate["inputs"]["image"]
        assert set(ranges) == {"p1", "p99", "mean", "std", "foreground_fraction", "spacing_min_mm", "spacing_max_mm", "extent_min_mm", "extent_max_mm"}
        for info in validation.sources["image"]:
            for feature, (low, high) in ranges.items():
                assert low <= info.quality[feature] <= high, feature
        # the same CT slice with its pixels zeroed (-1024 HU everywhere after the rescale)
        ds = pydicom.dcmread(next((classifier_data / "validation").glob("*.dcm")))
        ds.PixelData = np.zeros_like(ds.pixel_array).tobytes()
        blank = classifier_data.parent / "blank.dcm"
        ds.save_as(blank)
        _, info = prepare_input(blank, spec.preprocessing_spec)
        assert info.quality["std"] == 0.0 and info.quality["foreground_fraction"] == 0.0
        assert not ranges["std"][0] <= info.quality["std"]

    def test_the_card_carries_the_gate_to_the_gateway(self, tiny_classifier_spec):
        spec = load_spec(tiny_classifier_spec())
        gate = derive_gate(spec.quality_gate, [load_validation_set(spec).sources])
        assert gate is not None and gate["action"] == "warn"  # the default
        card = model_card(spec, precision="fp32", output_shapes=[[-1, 2]], report_digest="a" * 64, drift_reference=None, input_quality=gate)
        assert ModelCard.from_triton_config(_triton_config(card.to_parameters())).input_quality == gate
        without = model_card(spec, precision="fp32", output_shapes=[[-1, 2]], report_digest="a" * 64, drift_reference=None)
        assert "input_quality" not in without.to_parameters()
        assert ModelCard.from_triton_config(_triton_config(without.to_parameters())).input_quality is None

    def test_the_report_lists_every_range(self, tiny_classifier_spec):
        spec = load_spec(tiny_classifier_spec())
        gate = derive_gate(spec.quality_gate, [load_validation_set(spec).sources])
        report = ExportReport(model="m", task="classification", source_digest="x", benchmark_threads=1, max_metric_drop=0.01, input_quality=gate)
        markdown = report.to_markdown()
        assert "## Input quality gate" in markdown and "Action `warn`" in markdown
        assert f"| image | 16 | std | {gate['inputs']['image']['std'][0]:g} | {gate['inputs']['image']['std'][1]:g} |" in markdown
        disabled = ExportReport(model="m", task="classification", source_digest="x", benchmark_threads=1, max_metric_drop=0.01)
        assert "Disabled" in disabled.to_markdown()


def test_spec_rejects_an_unknown_action(tiny_classifier_spec):
    with pytest.raises(ExportSpecError, match="quality_gate.action"):
        load_spec(tiny_classifier_spec(quality_gate={"action": "ignore"}))
