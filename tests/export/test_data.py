"""Calibration and validation DICOM → prepared inputs, exactly as the gateway prepares them."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

from export.data import CALIBRATION_ADVICE, calibration_shortfall, load_calibration_set, load_validation_set, prepare_input
from export.errors import ExportDataError
from export.spec import ExportSpec, load_spec
from preprocessing import PreprocessingSpec, preprocess_instance, read_dataset


def test_validation_set_matches_the_gateway_preprocessing(tiny_classifier_spec, classifier_data: Path) -> None:
    spec = load_spec(tiny_classifier_spec())
    prepared = load_validation_set(spec)

    assert len(prepared) == 16
    assert prepared.inputs["image"].shape == (16, 1, 128, 128)
    assert prepared.labels is not None and set(prepared.labels.tolist()) == {0, 1}
    first = classifier_data / "validation" / prepared.cases[0]
    expected = preprocess_instance(read_dataset(first.read_bytes()), spec.preprocessing_spec).array
    np.testing.assert_array_equal(prepared.inputs["image"][0], expected)


def test_source_facts_come_from_the_headers(tiny_classifier_spec) -> None:
    prepared = load_validation_set(load_spec(tiny_classifier_spec()))
    info = prepared.sources["image"][0]

    assert (info.modality, info.manufacturer, info.rows, info.columns, info.slices) == ("CT", "medserve-phantom", 256, 256, 1)
    assert info.pixel_spacing_mm == pytest.approx((360 / 256, 360 / 256))
    assert info.prepared_spacing_mm == pytest.approx((360 / 128, 360 / 128))  # 256 → 128 pixels over the same field of view


def test_calibration_without_manifest_takes_the_first_dicom_files(tiny_classifier_spec) -> None:
    prepared = load_calibration_set(load_spec(tiny_classifier_spec()))

    assert len(prepared) == 64
    assert prepared.cases[:2] == ["slice_0000.dcm", "slice_0001.dcm"]
    assert prepared.labels is None and prepared.masks is None


def test_series_folders_become_volumes(tmp_path: Path) -> None:
    from devtools.zoo import ct_nodule_segmenter_3d
    from devtools.zoo.datasets import write_segmenter_3d_set

    write_segmenter_3d_set(tmp_path, 1, seed=3)
    array, info = prepare_input(tmp_path / "series_0000", ct_nodule_segmenter_3d.PREPROCESSING)

    assert array.shape == (1, 32, 96, 96)
    assert info.slices == 32
    assert info.prepared_spacing_mm == pytest.approx((2.0, 2.0, 2.0))


def test_pet_is_prepared_in_suv(tmp_path: Path) -> None:
    """The PET instance the zoo writes (activity in Bq/ml) comes back as the SUV map it was
    written from, windowed to [0, 1] over SUV 0–10."""
    from devtools.zoo.ct_pet_nodule_classifier import PET_PREPROCESSING, fusion_case
    from devtools.zoo.datasets import write_fusion_set
    from preprocessing import prepare_slice

    write_fusion_set(tmp_path, 2, seed=4)
    array, info = prepare_input(tmp_path / "case_0001" / "pet.dcm", PET_PREPROCESSING)
    rng = np.random.default_rng(4)  # the writer's stream: case 0 negative, case 1 positive
    fusion_case(rng, positive=False)
    written = fusion_case(rng, positive=True)

    assert info.modality == "PT"
    np.testing.assert_allclose(array, prepare_slice(written.pet_suv, PET_PREPROCESSING).array, atol=1e-3)


def test_multi_input_cases_follow_the_manifest(tmp_path: Path, write_spec) -> None:
    from devtools.zoo.datasets import write_fusion_set

    write_fusion_set(tmp_path / "validation", 4, seed=8)
    spec = _zoo_spec(
        write_spec,
        tmp_path / "validation",
        "fusion",
        "multi-input",
        "ct_pet_nodule_classifier",
        inputs=[
            {"name": "ct", "shape": [-1, 1, 128, 128], "preprocessing": _prep("CT", [128, 128])},
            {"name": "pet", "shape": [-1, 1, 64, 64], "preprocessing": _prep("PT", [64, 64]) | {"suv": "bw"}},
        ],
        outputs=[{"name": "p", "meaning": "class_probabilities", "labels": ["a", "b"]}],
    )
    prepared = load_validation_set(spec)

    assert prepared.inputs["ct"].shape == (4, 1, 128, 128)
    assert prepared.inputs["pet"].shape == (4, 1, 64, 64)
    assert [s.modality for s in prepared.sources["pet"]] == ["PT"] * 4
    assert prepared.labels is not None and prepared.labels.tolist() == [0, 1, 0, 1]


def _zoo_spec(write_spec, validation: Path, name: str, task: str, module: str, **fields) -> ExportSpec:
    """The FP32 spec of the zoo network ``devtools.zoo.<module>`` validated on the labelled
    set written in ``validation`` (its ``manifest.csv``); ``fields``: inputs, outputs, ..."""
    source = {"kind": "python", "factory": f"devtools.zoo.{module}:build_model", "state_dict": "w.pt"}
    validation_set = {"dicom_dir": str(validation), "manifest": str(validation / "manifest.csv")}
    return load_spec(write_spec({"name": name, "task": task, "source": source, **fields, "validation": validation_set, "precisions": ["fp32"]}))


def _prep(modality: str, size: list[int]) -> dict:
    return {"modalities": [modality], "window": {"center": 0.5, "width": 10.0}, "output_size": size, "layout": "CHW", "dtype": "float32"}


def _manifest(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        ([{"image": "slice_0000.dcm"}], r"needs a header and rows with columns \['image', 'label'\]; missing: \['label'\]"),
        ([{"image": "missing.dcm", "label": 0}], r"missing.dcm: not a DICOM file"),
        ([{"image": "manifest.csv", "label": 0}], r"manifest.csv: .*(DICOM|preamble|Part 10)"),  # a file that is not DICOM
        ([{"image": "slice_0000.dcm", "label": "yes"}], r"label must be a class index"),
        ([{"image": "slice_0000.dcm", "label": 2}], r"labels must lie in 0..1"),
    ],
)
def test_bad_validation_manifests(tmp_path: Path, classifier_data: Path, tiny_classifier_spec, rows: list[dict], match: str) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    shutil.copy(classifier_data / "validation" / "slice_0000.dcm", folder)
    manifest = _manifest(folder / "manifest.csv", rows)
    spec = load_spec(tiny_classifier_spec(validation={"dicom_dir": str(folder), "manifest": str(manifest)}))
    with pytest.raises(ExportDataError, match=match):
        load_validation_set(spec)


def test_fewer_calibration_cases_than_asked_are_all_taken_with_advice(tiny_classifier_spec, classifier_data: Path) -> None:
    spec = load_spec(tiny_classifier_spec(calibration={"dicom_dir": str(classifier_data / "validation")}))
    prepared = load_calibration_set(spec)

    assert len(prepared) == 16
    warning = calibration_shortfall(spec, prepared)
    assert warning is not None and warning.startswith("calibration: 64 cases asked for, 16 found; calibrated on 16. Advice: ")
    assert CALIBRATION_ADVICE in warning


def test_calibration_with_enough_cases_has_no_warning(tiny_classifier_spec, classifier_data: Path) -> None:
    spec = load_spec(tiny_classifier_spec(calibration={"dicom_dir": str(classifier_data / "validation"), "samples": 8}))
    prepared = load_calibration_set(spec)
    assert len(prepared) == 8 and calibration_shortfall(spec, prepared) is None


def test_a_calibration_folder_without_cases_is_an_error(tiny_classifier_spec, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    spec = load_spec(tiny_classifier_spec(calibration={"dicom_dir": str(tmp_path / "empty")}))
    with pytest.raises(ExportDataError, match=r"calibration: .*empty holds no cases; INT8 calibration needs at least one"):
        load_calibration_set(spec)


def test_missing_calibration_folder(tiny_classifier_spec, tmp_path: Path) -> None:
    spec = load_spec(tiny_classifier_spec(calibration={"dicom_dir": str(tmp_path / "nowhere")}))
    with pytest.raises(ExportDataError, match=r"calibration folder not found: .*nowhere"):
        load_calibration_set(spec)


def test_wrong_modality_is_a_data_error(tmp_path: Path, classifier_data: Path) -> None:
    spec = PreprocessingSpec.from_dict(_prep("MR", [128, 128]))
    with pytest.raises(ExportDataError, match=r"slice_0000.dcm: this model takes MR images; the instance's Modality is CT"):
        prepare_input(classifier_data / "validation" / "slice_0000.dcm", spec)


def test_a_volumetric_input_needs_a_series_folder(classifier_data: Path) -> None:
    from devtools.zoo.ct_nodule_segmenter_3d import PREPROCESSING

    with pytest.raises(ExportDataError, match=r"a volumetric input needs a folder of \*.dcm files"):
        prepare_input(classifier_data / "validation" / "slice_0000.dcm", PREPROCESSING)


def test_segmentation_masks_are_loaded(tmp_path: Path, write_spec) -> None:
    from devtools.zoo.datasets import write_segmenter_set

    write_segmenter_set(tmp_path / "validation", 3, seed=9)
    spec = _zoo_spec(
        write_spec,
        tmp_path / "validation",
        "seg",
        "segmentation-2d",
        "ct_nodule_segmenter",
        inputs=[{"name": "image", "shape": [-1, 1, 128, 128]}],
        outputs=[{"name": "labels", "meaning": "segmentation_labels", "labels": ["background", "nodule"], "dtype": "uint8"}],
        preprocessing=_prep("CT", [128, 128]),
    )
    prepared = load_validation_set(spec)

    assert prepared.masks is not None and prepared.masks.shape == (3, 128, 128) and prepared.masks.dtype == np.uint8
    assert prepared.labels is None
