"""The scaling bench's report: the generated Markdown block of ``docs/benchmarks.md`` (between
its own markers; the hand-written text around it is kept) from the run's JSON report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.serving.report import replace_block, targets_table

from .stack import BY_KEY

BEGIN, END = "<!-- scaling bench: begin (generated) -->", "<!-- scaling bench: end -->"
SECTION = "## Scaling with gateway workers (issue 17)\n\n"


def _fmt(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def ratios_to_one_worker(cells: list[dict[str, Any]]) -> dict[tuple[str, int], float]:
    """``{(variant, concurrency): throughput / the 1w throughput of that precision and
    concurrency}`` for every cell whose ``1w`` cell was measured."""
    base = {(c["variant"].split(":")[1], c["concurrency"]): c["load"]["throughput_rps"] for c in cells if c["variant"].startswith("1w:")}
    ratios = {}
    for cell in cells:
        reference = base.get((cell["variant"].split(":")[1], cell["concurrency"]))
        if reference:
            ratios[(cell["variant"], cell["concurrency"])] = cell["load"]["throughput_rps"] / reference
    return ratios


def targets(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Issue 17: the 2D throughput grows with workers and with replicas (> the 1w cell, at
    every measured concurrency)."""
    found = []
    for (variant, concurrency), ratio in sorted(ratios_to_one_worker(cells).items()):
        if not variant.startswith("1w:"):
            found.append({"target": f"({variant}) throughput > (1w:{variant.split(':')[1]}) at concurrency {concurrency}",
                          "measured": f"{ratio:.2f}×", "value": round(ratio, 3), "met": ratio > 1.0})
    return found


def render_markdown(report: dict[str, Any]) -> str:
    machine, cells = report["machine"], report["cells"]
    ratios = ratios_to_one_worker(cells)
    lines = [
        f"Run `{report['timestamp_utc']}` ({report['wall_s']:.0f} s), `benchmarks/results/scaling-{report['timestamp_utc']}.json`: "
        f"{machine['cpu_model']}, {machine['logical_cpus']} logical CPUs; load average at start "
        f"{', '.join(map(str, machine['load_average_at_start']))}, other processes {_fmt(machine.get('other_cpu_share'), 2)} CPUs on average. "
        f"Per cell at most {report['settings']['max_requests']} requests or {report['settings']['seconds']:g} s.",
        "",
        "Configurations: " + "; ".join(f"**{k}** {BY_KEY[k].label}" for k in report["settings"]["configurations"]) + ".",
        "",
        "| configuration:precision | conc. | requests | throughput (req/s) | × 1w | p50 (ms) | p99 (ms) | "
        "CPU ms/req gateway | triton | load generator | other | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for cell in sorted(cells, key=lambda c: (c["variant"].split(":")[1], c["concurrency"], c["variant"])):
        load, cpu = cell["load"], cell["stages"].get("cpu_ms_per_request", {})
        lines.append(
            f"| {cell['variant']} | {cell['concurrency']} | {load['requests']} | {load['throughput_rps']:.1f} | "
            f"{_fmt(ratios.get((cell['variant'], cell['concurrency'])), 2)} | {_fmt(load['p50_ms'])} | {_fmt(load['p99_ms'])} | "
            + " | ".join(_fmt(cpu.get(k), 2) for k in ("gateway", "triton", "client", "other"))
            + f" | {sum(load['errors'].values())} |"
        )
    p = report["projection"]
    lines += [
        "",
        f"**Projection, not a measurement** ({p['host_cores']}-core GPU host, {p['reserved_cores']:g} cores kept for the OS, "
        f"ingress and the node; from each cell's CPU per request at concurrency {p['concurrency']}; the GPU assumed not the limit; "
        "the load generator elsewhere): *lower* counts Triton's CPU per request measured here all on the host, *upper* none of it "
        "(on a GPU host the model's compute, most of it, moves to the GPU; gRPC, batching and the Python backend stay).",
        "",
        "| from cell | gateway CPU ms/req | triton CPU ms/req | req/s per gateway core | lower: gateway workers | lower: req/s | "
        "upper: gateway workers | upper: req/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in sorted(p["rows"], key=lambda r: (r["variant"].split(":")[1], r["variant"])):
        lower, upper = row["lower"], row["upper"]
        lines.append(
            f"| {row['variant']} | {lower['gateway_ms']:.2f} | {lower['triton_host_ms']:.2f} | {lower['per_gateway_core_rps']:.0f} | "
            f"{lower['gateway_workers']} | {lower['throughput_rps']:.0f} | {upper['gateway_workers']} | {upper['throughput_rps']:.0f} |"
        )
    lines += ["", *targets_table(report["targets"], "#### Targets")]
    return "\n".join(lines) + "\n"


def write_markdown(path: Path, generated: str) -> None:
    """Replace the scaling bench's block of ``path``, appending the section when missing."""
    replace_block(path, generated, (BEGIN, END), SECTION)
