"""The pieces of ``medserve bench`` that decide what is measured and how it is reported.

No timings are asserted anywhere: performance targets live in the benchmark's report only.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from export.triton.config import ModelConfig, TensorConfig, render
from export.triton.model_dir import RUNNER_SOURCE
from benchmarks.serving.inputs import multipart_form
from benchmarks.serving.machine import cpu_per_request, group_cpu_seconds, machine_busy_seconds
from benchmarks.serving.measure import Cell
from benchmarks.serving.report import BEGIN, END, render_markdown, write_markdown
from benchmarks.serving.repositories import bench_repository, no_batching_config, served_models
from benchmarks.serving.stages import gateway_stage_totals, stage_breakdown, triton_model_totals
from benchmarks.serving.targets import evaluate_targets
from benchmarks.serving.variants import CLASSIFIER, SEGMENTER_3D, VARIANTS

CONFIG = """name: "m"
backend: "python"
max_batch_size: 8
input [
  { name: "x" data_type: TYPE_FP32 dims: [ 1, 4 ] }
]
dynamic_batching { max_queue_delay_microseconds: 2000 }
instance_group [ { kind: KIND_CPU count: 1 } ]
parameters { key: "task" value: { string_value: "classification" } }
"""


def _rendered_config() -> str:
    return render(
        ModelConfig(
            name="m", backend="python", max_batch_size=8, max_queue_delay_us=2000, preferred_batch_sizes=[4],
            inputs=[TensorConfig("x", "float32", [1, 4])], outputs=[TensorConfig("p", "float32", [2])], parameters={"task": "classification"},
        )
    )


@pytest.mark.parametrize(
    ("config", "kept"),
    [
        (_rendered_config(), ["instance_group", "parameters", "input [", "output [", "model_warmup"]),  # as export renders it
        (CONFIG.replace("dynamic_batching { max_queue_delay_microseconds: 2000 }",
                        "dynamic_batching {\n  preferred_batch_size: [ 4 ]\n  max_queue_delay_microseconds: 100\n}"),
         ["instance_group", "parameters"]),  # multi-line block, written by hand
    ],
)
def test_no_batching_config_has_no_dynamic_batching_block(config: str, kept: list[str]) -> None:
    stripped = no_batching_config(config)

    assert "dynamic_batching" not in stripped
    assert "max_queue_delay" not in stripped and "preferred_batch_size" not in stripped
    for text in kept:
        assert text in stripped


def test_no_batching_config_is_the_export_rendering_without_that_one_line() -> None:
    config = _rendered_config()
    assert no_batching_config(config).splitlines() == [
        line for line in config.splitlines() if not line.startswith("dynamic_batching")
    ]


def test_bench_serves_the_variants_the_export_table_names(tmp_path: Path) -> None:
    for name in ("m", "m_int8", "other"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.pbtxt").write_text(CONFIG)
    (tmp_path / "n").mkdir()
    (tmp_path / "n" / "config.pbtxt").write_text(CONFIG)

    assert served_models(tmp_path, ["m", "n"]) == {"m": ["m", "m_int8"], "n": ["n"]}
    with pytest.raises(FileNotFoundError, match="absent not in"):
        served_models(tmp_path, ["absent"])


def test_bench_repository_copies_strips_and_uses_the_current_runner(tmp_path: Path) -> None:
    source = tmp_path / "source"
    (source / "m" / "1").mkdir(parents=True)
    (source / "m" / "config.pbtxt").write_text(CONFIG)
    (source / "m" / "1" / "model.onnx").write_bytes(b"onnx")
    (source / "m" / "1" / "model.py").write_text("# an older runner")
    (source / "m" / "configs").mkdir()
    (source / "m" / "configs" / "tensorrt.pbtxt").write_text("platform: tensorrt_plan")

    batching = bench_repository(source, tmp_path / "batching", ["m"], dynamic_batching=True)
    plain = bench_repository(source, tmp_path / "plain", ["m"], dynamic_batching=False)

    assert "dynamic_batching" in (batching / "m" / "config.pbtxt").read_text()
    assert "dynamic_batching" not in (plain / "m" / "config.pbtxt").read_text()
    for repository in (batching, plain):
        assert (repository / "m" / "1" / "model.onnx").read_bytes() == b"onnx"
        assert (repository / "m" / "1" / "model.py").read_bytes() == RUNNER_SOURCE.read_bytes()
        assert not (repository / "m" / "configs").exists()  # production renderings are not served here
    assert (source / "m" / "config.pbtxt").read_text() == CONFIG  # the source is untouched


METRICS = """# TYPE medserve_stage_duration_seconds histogram
medserve_stage_duration_seconds_bucket{le="0.005",model="m",stage="decode"} 3.0
medserve_stage_duration_seconds_count{model="m",stage="decode"} 4.0
medserve_stage_duration_seconds_sum{model="m",stage="decode"} 0.008
medserve_stage_duration_seconds_count{model="m",stage="infer"} 4.0
medserve_stage_duration_seconds_sum{model="m",stage="infer"} 0.02
medserve_stage_duration_seconds_count{model="other",stage="infer"} 9.0
medserve_stage_duration_seconds_sum{model="other",stage="infer"} 9.0
# TYPE medserve_request_duration_seconds histogram
medserve_request_duration_seconds_count{model="m",route="/v1/models/{name}/predict",status_class="2xx"} 4.0
medserve_request_duration_seconds_sum{model="m",route="/v1/models/{name}/predict",status_class="2xx"} 0.04
medserve_request_duration_seconds_count{model="m",route="/v1/models/{name}/predict",status_class="4xx"} 2.0
medserve_request_duration_seconds_sum{model="m",route="/v1/models/{name}/predict",status_class="4xx"} 5.0
"""


def test_gateway_stage_totals_reads_one_model_and_successful_predictions() -> None:
    totals = gateway_stage_totals(METRICS, "m")

    assert totals == {"decode": (0.008, 4.0), "infer": (0.02, 4.0), "request": (0.04, 4.0)}


def _stats(count: int, executions: int, infer_ns: int) -> dict:
    stage = lambda ns: {"count": count, "ns": ns}  # noqa: E731
    return {
        "model_stats": [
            {
                "name": "m", "version": "1", "inference_count": count, "execution_count": executions,
                "inference_stats": {
                    "success": stage(count * 10), "fail": stage(0), "queue": stage(count * 1_000_000),
                    "compute_input": stage(count * 100_000), "compute_infer": stage(infer_ns), "compute_output": stage(count * 50_000),
                },
            }
        ]
    }


def test_stage_breakdown_is_the_mean_per_request_over_the_measurement() -> None:
    before_gateway = {"decode": (0.004, 2.0), "request": (0.02, 2.0)}
    after_gateway = {"decode": (0.010, 4.0), "request": (0.06, 4.0), "infer": (0.008, 2.0)}
    before = triton_model_totals(_stats(count=10, executions=10, infer_ns=30_000_000))
    after = triton_model_totals(_stats(count=30, executions=15, infer_ns=90_000_000))

    breakdown = stage_breakdown(before_gateway, after_gateway, before, after)

    assert breakdown["gateway_ms"] == {"decode": 3.0, "request": 20.0, "infer": 4.0}
    triton = breakdown["triton"]
    assert triton["requests"] == 20 and triton["executions"] == 5
    assert triton["queue_ms"] == 1.0 and triton["compute_input_ms"] == 0.1 and triton["compute_output_ms"] == 0.05
    assert triton["compute_infer_ms"] == 3.0
    assert triton["compute_ms"] == pytest.approx(3.15)
    assert triton["mean_batch_size"] == 4.0


def test_cpu_per_request_attributes_the_rest_of_the_machine_to_other() -> None:
    before = {"client": 1.0, "gateway": 10.0, "machine": 100.0}
    after = {"client": 1.5, "gateway": 12.0, "machine": 104.0}

    assert cpu_per_request(before, after, requests=100) == {"client": 5.0, "gateway": 20.0, "machine": 40.0, "other": 15.0}


def test_group_cpu_seconds_counts_this_process_group() -> None:
    import os

    assert group_cpu_seconds(os.getpgid(0)) > 0
    assert machine_busy_seconds() > 0


def _cell(model: str, variant: str, concurrency: int, rps: float, p50: float, p99: float, compute_infer: float | None = None) -> Cell:
    stages = {"triton": {"requests": 100, "compute_infer_ms": compute_infer}} if compute_infer else {}
    load = {"throughput_rps": rps, "p50_ms": p50, "p95_ms": p99, "p99_ms": p99, "requests": 100, "errors": {}}
    return Cell(model, variant, concurrency, load, stages)


def test_targets_are_ratios_against_the_baseline() -> None:
    cells = [
        _cell(CLASSIFIER, "a", 16, rps=100, p50=150, p99=300),
        _cell(CLASSIFIER, "c", 16, rps=160, p50=90, p99=200),
        _cell(CLASSIFIER, "d", 16, rps=300, p50=50, p99=350),
        _cell(CLASSIFIER, "c", 1, rps=50, p50=10.0, p99=12, compute_infer=8.5),
        _cell(SEGMENTER_3D, "c", 1, rps=5, p50=200.0, p99=250, compute_infer=100.0),
    ]

    targets = {t["target"]: t for t in evaluate_targets(cells)}

    throughput_c = targets[f"{CLASSIFIER}: (c) throughput ≥ 1.5× (a) at concurrency 16"]
    assert throughput_c["value"] == 1.6 and throughput_c["met"] is True
    throughput_d = targets[f"{CLASSIFIER}: (d) throughput ≥ 4× (a) at concurrency 16"]
    assert throughput_d["value"] == 3.0 and throughput_d["met"] is False
    assert targets[f"{CLASSIFIER}: (c) p99 ≤ (a) p99 at concurrency 16"]["met"] is True
    assert targets[f"{CLASSIFIER}: (d) p99 ≤ (a) p99 at concurrency 16"]["met"] is False
    outside = targets[f"{CLASSIFIER} (c) at concurrency 1: time outside Triton compute ≤ 20% of p50"]
    assert outside["value"] == 0.15 and outside["met"] is True
    ratio = targets[f"{SEGMENTER_3D} (c) at concurrency 1: end-to-end p50 ≤ 1.5× Triton compute"]
    assert ratio["value"] == 2.0 and ratio["met"] is False


def _report(cells: list[Cell]) -> dict:
    return {
        "timestamp_utc": "20260101T000000Z",
        "wall_s": 1.0,
        "machine": {
            "cpu_model": "Some CPU", "logical_cpus": 2, "memory_gib": 8.0, "platform": "Linux", "python": "3.11",
            "load_average_at_start": [0.1, 0.1, 0.1], "load_average_at_end": [0.2, 0.2, 0.2], "other_cpu_share": 0.05,
            "versions": {"torch": "2.0", "tritonserver": "2.51.0"},
        },
        "variants": {v.key: {"label": v.label, "description": v.description} for v in VARIANTS},
        "inputs": {CLASSIFIER: ["693_UNCI.dcm"]},
        "settings": {"max_requests": {CLASSIFIER: 10}, "seconds_per_measurement": {CLASSIFIER: 1.0}},
        "cells": [
            {"model": c.model, "variant": c.variant, "concurrency": c.concurrency, "load": c.load, "stages": c.stages} for c in cells
        ],
        "targets": evaluate_targets(cells),
    }


def test_markdown_block_is_replaced_and_hand_written_text_kept(tmp_path: Path) -> None:
    cells = [_cell(CLASSIFIER, "a", 16, rps=100, p50=150, p99=300), _cell(CLASSIFIER, "c", 16, rps=160, p50=90, p99=200)]
    generated = render_markdown(_report(cells))
    assert "Some CPU, 2 logical CPUs" in generated
    assert "| (c) dynamic batching | 16 | 100 | 160.0 | 1.60 |" in generated

    document = tmp_path / "benchmarks.md"
    document.write_text("# Benchmarks\n\nWritten by hand.\n")
    write_markdown(document, generated)
    write_markdown(document, generated.replace("Some CPU", "Another CPU"))

    text = document.read_text()
    assert text.startswith("# Benchmarks\n\nWritten by hand.\n")
    assert text.count(BEGIN) == 1 and text.count(END) == 1
    assert "Another CPU" in text and "Some CPU" not in text


def test_multipart_form_holds_every_file_as_dicom() -> None:
    from python_multipart.multipart import parse_options_header

    body, content_type = multipart_form([("a.dcm", b"DICM-1"), ("b.dcm", b"DICM-2")])
    media_type, options = parse_options_header(content_type)

    assert media_type == b"multipart/form-data"
    boundary = options[b"boundary"].decode()
    parts = body.split(f"--{boundary}".encode())
    assert len(parts) == 4 and parts[-1] == b"--\r\n"
    assert b'filename="a.dcm"' in parts[1] and parts[1].endswith(b"DICM-1\r\n")
    assert b"Content-Type: application/dicom" in parts[2]


def test_result_json_round_trips(tmp_path: Path) -> None:
    report = _report([_cell(CLASSIFIER, "a", 1, rps=10, p50=100, p99=120)])
    (tmp_path / "r.json").write_text(json.dumps(report))
    assert json.loads((tmp_path / "r.json").read_text())["cells"][0]["load"]["throughput_rps"] == 10
