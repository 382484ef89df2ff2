"""The scaling bench's pieces that need no server: the projection's arithmetic, the ratios to
one worker and the generated block."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.scaling.projection import Projection, project_cells
from benchmarks.scaling.report import BEGIN, END, ratios_to_one_worker, targets, write_markdown


def test_the_free_cores_split_between_gateway_and_triton_by_their_cpu_per_request() -> None:
    projection = Projection(host_cores=16, reserved_cores=2, gateway_ms=10.0, triton_host_ms=4.0)

    assert projection.per_gateway_core_rps == pytest.approx(100.0)
    assert projection.throughput_rps == pytest.approx(1000.0)  # 14 cores × 1000 / 14 ms
    assert (projection.gateway_cores, projection.triton_cores) == (pytest.approx(10.0), pytest.approx(4.0))
    assert projection.gateway_workers == 10


def test_without_triton_on_the_host_the_gateway_gets_every_free_core() -> None:
    projection = Projection(host_cores=16, reserved_cores=1.5, gateway_ms=8.0, triton_host_ms=0.0)

    assert projection.throughput_rps == pytest.approx(14.5 * 125.0)
    assert projection.gateway_workers == 14


@pytest.mark.parametrize("gateway_ms, triton_ms, reserved", [(0.0, 1.0, 2.0), (5.0, -1.0, 2.0), (5.0, 1.0, 16.0)])
def test_a_projection_without_cpu_or_free_cores_is_refused(gateway_ms: float, triton_ms: float, reserved: float) -> None:
    with pytest.raises(ValueError):
        Projection(16, reserved, gateway_ms, triton_ms)


def _cell(variant: str, concurrency: int, rps: float, gateway_ms: float | None = 10.0, triton_ms: float = 5.0) -> dict:
    cpu = {"triton": triton_ms, "client": 0.5, "other": 0.1} | ({"gateway": gateway_ms} if gateway_ms else {})
    return {"variant": variant, "concurrency": concurrency, "load": {"throughput_rps": rps}, "stages": {"cpu_ms_per_request": cpu}}


def test_each_cell_at_the_concurrency_is_projected_as_a_range_triton_on_the_host_or_not() -> None:
    cells = [_cell("1w:fp32", 16, 70.0), _cell("1w:fp32", 32, 72.0), _cell("2w:fp32", 16, 100.0, gateway_ms=None)]

    [row] = project_cells(cells, host_cores=16, reserved_cores=2, concurrency=16)

    assert row["variant"] == "1w:fp32"
    assert row["lower"]["throughput_rps"] == pytest.approx(14 * 1000 / 15, abs=0.1)
    assert row["upper"]["throughput_rps"] == pytest.approx(1400.0)


def test_throughput_is_compared_with_one_worker_of_the_same_precision_and_concurrency() -> None:
    cells = [_cell("1w:fp32", 16, 50.0), _cell("2w:fp32", 16, 80.0), _cell("1w:int8", 16, 100.0), _cell("2r:int8", 16, 90.0)]

    assert ratios_to_one_worker(cells) == {("1w:fp32", 16): 1.0, ("2w:fp32", 16): 1.6, ("1w:int8", 16): 1.0, ("2r:int8", 16): 0.9}
    assert [(t["value"], t["met"]) for t in targets(cells)] == [(0.9, False), (1.6, True)]


def test_the_section_is_appended_once_then_its_block_replaced(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\nhand-written\n")

    write_markdown(doc, "first\n")
    write_markdown(doc, "second\n")

    text = doc.read_text()
    assert text.count("## Scaling with gateway workers") == 1
    assert f"{BEGIN}\nsecond\n{END}" in text and "first" not in text and "hand-written" in text
