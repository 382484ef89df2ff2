"""The input quality gate at serving: a blank or degenerate input is answered 422
``input_out_of_range`` under ``reject`` and 200 with a warning under ``warn``; a normal input
passes untouched. The demo models were exported before the gate existed or with their own
gate, so the end-to-end tests give the real model's card the gate export would derive
(:func:`export.quality.feature_ranges` over real inputs) and run the real task on Triton."""

from __future__ import annotations

import dataclasses
import gzip
import io
from pathlib import Path

import nibabel
import numpy as np
import pydicom
import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from contract import ModelCard, ModelInput, ModelOutput
from devtools.testdata import pydicom_test_file
from export.quality import feature_ranges
from gateway.audit import AuditRecord
from gateway.errors import InputOutOfRange
from gateway.quality import WARNINGS_KEY, answer_warnings, check_input, check_slices
from preprocessing import PreprocessingSpec, preprocess_instance, preprocess_series, read_dataset
from preprocessing.quality import quality_features

DICOM = {"Content-Type": "application/dicom"}
RANGES = {"std": [100.0, 1000.0], "foreground_fraction": [0.2, 1.0], "p99": [-500.0, 2000.0], "extent_max_mm": [100.0, 500.0]}
NORMAL = {"input_statistics": {"p1": -1000.0, "p99": 300.0, "mean": -400.0, "std": 400.0, "foreground_fraction": 0.5},
          "input_shape": [64, 200, 200], "input_spacing_mm": [2.0, 1.0, 1.0]}
BLANK = {"input_statistics": {"p1": 0.0, "p99": 0.0, "mean": 0.0, "std": 0.0, "foreground_fraction": 0.0},
         "input_shape": [176, 256, 256], "input_spacing_mm": [1.0, 1.0, 1.0]}


def _card(action: str | None, name: str = "gated") -> ModelCard:
    gate = None if action is None else {"action": action, "margin": 1.0, "cases": {"image": 4}, "inputs": {"image": RANGES}}
    return ModelCard(
        name=name, task="classification", description="", inputs=[ModelInput("image", "float32", [-1, 1, 8, 8])],
        outputs=[ModelOutput("p", "class_probabilities", ["a", "b"])], preprocessing=PreprocessingSpec(), max_batch_size=1,
        export_report_digest="", input_quality=gate,
    )


def _counted(model: str, feature: str, action: str) -> float:
    return REGISTRY.get_sample_value("medserve_input_quality_total", {"model": model, "feature": feature, "action": action}) or 0.0


class TestCheckInput:
    def test_a_normal_input_passes_without_a_trace(self):
        applied = dict(NORMAL)
        assert check_input(_card("reject"), applied) == [] and WARNINGS_KEY not in applied

    def test_a_blank_input_is_rejected_naming_the_feature_and_range(self):
        before = _counted("gated", "std", "reject")
        with pytest.raises(InputOutOfRange) as caught:
            check_input(_card("reject"), dict(BLANK))
        assert (caught.value.status_code, caught.value.code) == (422, "input_out_of_range")
        assert "blank" in caught.value.message and "accepted std [100, 1000]" in caught.value.message
        assert _counted("gated", "std", "reject") == before + 1

    def test_a_blank_input_is_out_even_where_no_range_would_catch_it(self):
        card = dataclasses.replace(_card("reject"), input_quality={"action": "reject", "inputs": {"image": {}}})
        with pytest.raises(InputOutOfRange, match="blank"):
            check_input(card, dict(BLANK))

    def test_under_warn_the_finding_is_recorded_and_counted(self):
        applied = dict(BLANK)
        before = _counted("gated", "std", "warn")
        found = check_input(_card("warn"), applied)
        assert [w.feature for w in found] == ["std"]  # blank; its p99 (0) and extent (256 mm) are within their ranges
        assert applied[WARNINGS_KEY][0]["code"] == "input_out_of_range"
        assert _counted("gated", "std", "warn") == before + 1

    def test_the_audit_record_notes_the_features_not_their_values(self):
        audit = AuditRecord(request_id="r", key_id="k", route="predict")
        check_input(_card("warn"), dict(NORMAL, input_shape=[600, 200, 200]), audit=audit)
        with pytest.raises(InputOutOfRange):
            check_input(_card("reject"), dict(BLANK), audit=audit)
        assert audit.input_quality == ["extent_max_mm", "std"]

    def test_geometry_messages_quote_no_value_of_the_input(self):
        applied = dict(NORMAL, input_shape=[600, 200, 200])  # 1200 mm: a whole-body scan for a chest model
        [warning] = check_input(_card("warn"), applied)
        assert warning.feature == "extent_max_mm"
        assert "above the accepted range [100, 500]" in warning.message and "1200" not in warning.message

    def test_no_gate_no_check(self):
        applied = dict(BLANK)
        assert check_input(_card(None), applied) == [] and WARNINGS_KEY not in applied
        disabled = dataclasses.replace(_card("reject"), input_quality={"enabled": False, "action": "reject", "inputs": {"image": RANGES}})
        assert check_input(disabled, dict(BLANK)) == []

    def test_slices_of_a_series_are_out_only_when_every_slice_is(self):
        """A blank slice above the head belongs to a normal series; a blank series is blank on every slice."""
        card = _card("reject")
        assert check_slices(card, [dict(NORMAL), dict(BLANK), dict(NORMAL)], [None, None, None]) == []  # type: ignore[list-item]
        with pytest.raises(InputOutOfRange, match="blank"):
            check_slices(card, [dict(BLANK), dict(BLANK)], [None, None])  # type: ignore[list-item]

    def test_answer_lists_each_warning_once_from_every_input(self):
        warning = {"code": "input_out_of_range", "message": "input 'pet': ...", "feature": "std"}
        records = [{"ct": {"window": {}}, "pet": {WARNINGS_KEY: [warning]}}, {"ct": {}, "pet": {WARNINGS_KEY: [warning]}}]
        assert answer_warnings(records) == [warning]
        assert answer_warnings([{"window": {"center": 1}}]) == []


# --- end to end: the real gateway, the real Triton, real files -------------------------------------------------------

CLASSIFIER = "ct_nodule_classifier"
SEG_3D = "ct_nodule_segmenter_3d"


def _blank_ct(path: Path) -> bytes:
    """A real CT instance with every stored pixel zeroed (one value after the rescale)."""
    ds = pydicom.dcmread(path)
    ds.PixelData = np.zeros_like(ds.pixel_array).tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer)
    return buffer.getvalue()


def _philips_mprage_as_ct() -> bytes:
    """nibabel's real Philips enhanced MR (176 frames of 256 x 256, PixelData all zero), its
    Modality relabelled CT for the demo CT 3D segmenter to take it, as the multi-frame e2e tests do."""
    data = gzip.decompress((Path(nibabel.__file__).parent / "nicom" / "tests" / "data" / "philips_mprage.dcm.gz").read_bytes())
    ds = pydicom.dcmread(io.BytesIO(data))
    assert not np.any(ds.pixel_array)
    ds.Modality = "CT"
    buffer = io.BytesIO()
    ds.save_as(buffer)
    return buffer.getvalue()


def _classifier_gate(action: str, real_ct_files: dict[str, Path], spec: PreprocessingSpec) -> dict:
    """What export would derive from the three real CT files as its validation cases."""
    cases = []
    for path in real_ct_files.values():
        ds = read_dataset(path.read_bytes())
        cases.append(quality_features(preprocess_instance(ds, spec).applied, ds))
    return {"action": action, "margin": 1.0, "cases": {"image": 3}, "inputs": {"image": feature_ranges(cases, 1.0)}}


def _series_gate(action: str, spec: PreprocessingSpec) -> dict:
    """What export would derive from two synthetic chest CT series (the zoo's phantom)."""
    from devtools.testdata import chest_ct_series

    cases = []
    for seed in (1, 2):
        series = chest_ct_series(seed)
        cases.append(quality_features(preprocess_series(series, spec).applied))
    return {"action": action, "margin": 1.0, "cases": {"volume": 2}, "inputs": {"volume": feature_ranges(cases, 1.0)}}


@pytest.fixture
def gated(gateway: TestClient, monkeypatch: pytest.MonkeyPatch):
    """``gated(model, make_gate)``: the catalog answers ``model``'s real card with the gate
    ``make_gate(input_name, preprocessing)`` returns."""
    catalog = gateway.app.state.catalog
    original = catalog.card

    def install(model: str, make_gate) -> None:
        async def card(name: str) -> ModelCard:
            real = await original(name)
            return dataclasses.replace(real, input_quality=make_gate(real.preprocessing)) if name == model else real

        monkeypatch.setattr(catalog, "card", card)

    return install


@pytest.mark.e2e
class TestServed:
    def test_blank_ct_rejected_and_normal_ct_answered_without_warning(self, gateway: TestClient, gated, real_ct_files) -> None:
        gated(CLASSIFIER, lambda spec: _classifier_gate("reject", real_ct_files, spec))
        normal = gateway.post(f"/v1/models/{CLASSIFIER}/predict", content=real_ct_files["CT_small"].read_bytes(), headers=DICOM)
        assert normal.status_code == 200, normal.text
        assert normal.json()["warnings"] == []
        blank = gateway.post(f"/v1/models/{CLASSIFIER}/predict", content=_blank_ct(real_ct_files["CT_small"]), headers=DICOM)
        assert blank.status_code == 422, blank.text
        body = blank.json()
        assert body["code"] == "input_out_of_range" and "blank" in body["message"] and body["request_id"]

    def test_blank_ct_answered_with_a_warning_under_warn(self, gateway: TestClient, gated, real_ct_files) -> None:
        gated(CLASSIFIER, lambda spec: _classifier_gate("warn", real_ct_files, spec))
        response = gateway.post(f"/v1/models/{CLASSIFIER}/predict", content=_blank_ct(real_ct_files["693_UNCI"]), headers=DICOM)
        assert response.status_code == 200, response.text
        warnings = response.json()["warnings"]
        assert warnings and warnings[0]["code"] == "input_out_of_range" and warnings[0]["feature"] == "std"
        assert "blank" in warnings[0]["message"]

    def test_all_zero_philips_mr_rejected_before_inference(self, gateway: TestClient, gated) -> None:
        """The motivating case: answered 200 with a 329 mL "brain" before the gate."""
        gated(SEG_3D, lambda spec: _series_gate("reject", spec))
        response = gateway.post(f"/v1/models/{SEG_3D}/predict", content=_philips_mprage_as_ct(), headers=DICOM)
        assert response.status_code == 422, response.text
        assert response.json()["code"] == "input_out_of_range"
        assert "'volume' is blank" in response.json()["message"]

    def test_all_zero_philips_mr_answered_with_a_warning_under_warn(self, gateway: TestClient, gated) -> None:
        gated(SEG_3D, lambda spec: _series_gate("warn", spec))
        response = gateway.post(f"/v1/models/{SEG_3D}/predict", content=_philips_mprage_as_ct(), headers=DICOM)
        assert response.status_code == 200, response.text
        body = response.json()
        assert [w["feature"] for w in body["warnings"]][:1] == ["std"]
        assert body["preprocessing"][WARNINGS_KEY] == body["warnings"]

    def test_binary_answers_carry_the_warnings_in_a_header(self, gateway: TestClient, gated) -> None:
        gated(SEG_3D, lambda spec: _series_gate("warn", spec))
        response = gateway.post(f"/v1/models/{SEG_3D}/predict?format=nifti", content=_philips_mprage_as_ct(), headers=DICOM)
        assert response.status_code == 200, response.text
        assert response.headers["X-Medserve-Warnings"].split(", ")[0] == "input_out_of_range:std"

    def test_a_normal_series_passes_the_gate_derived_from_others(self, gateway: TestClient, gated, tmp_path: Path) -> None:
        from devtools.testdata import chest_ct_series

        gated(SEG_3D, lambda spec: _series_gate("reject", spec))
        parts = []
        for ds in chest_ct_series(seed=7):
            buffer = io.BytesIO()
            ds.save_as(buffer, enforce_file_format=True)
            parts.append(("files", (f"{ds.SOPInstanceUID}.dcm", buffer.getvalue(), "application/dicom")))
        response = gateway.post(f"/v1/models/{SEG_3D}/predict", files=parts)
        assert response.status_code == 200, response.text
        assert response.json()["warnings"] == []


def test_the_pydicom_ct_small_has_spacing_for_the_geometry_features() -> None:
    ds = read_dataset(pydicom_test_file("CT_small.dcm").read_bytes())
    assert "spacing_min_mm" in quality_features({"input_shape": [128, 128]}, ds)
