"""The real-size bench's Markdown: per workload its load table (× the script), the gateway's
and Triton's stage breakdown, CPU per request, then the targets; written between its own
markers in ``docs/benchmarks.md`` so the hand-written text around them is kept."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.serving.report import replace_block, targets_table
from benchmarks.serving.stages import STAGES

BEGIN, END = "<!-- realsize bench: begin (generated) -->", "<!-- realsize bench: end -->"
CPU_KEYS = ("gateway", "triton", "script", "baseline", "client", "other")


def _fmt(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def render_markdown(report: dict[str, Any]) -> str:
    machine = report["machine"]
    lines = [
        f"Run `{report['timestamp_utc']}` ({report['wall_s']:.0f} s), `benchmarks/results/realsize-{report['timestamp_utc']}.json`; "
        f"{machine['cpu_model']}, {machine['logical_cpus']} logical CPUs; load average at start "
        f"{', '.join(map(str, machine['load_average_at_start']))}, at end {', '.join(map(str, machine['load_average_at_end']))}.",
        "",
        "Variants: " + "; ".join(f"**{k}**: {v}" for k, v in report["variants"].items()) + ".",
        "",
    ]
    cells = report["cells"]
    for workload, descriptions in report["workloads"].items():
        mine = [c for c in cells if c["workload"] == workload]
        if not mine:
            continue
        script = {(c["concurrency"], c["variant"]): c["load"] for c in mine if c["variant"].startswith("script")}
        lines += [
            f"#### {workload}: `{mine[0]['model']}`",
            "",
            f"Inputs: {'; '.join(descriptions)}." + (
                " A ZIP variant's × script is against `script-zip`, the script given the same ZIP."
                if any(c["variant"] == "script-zip" for c in mine) else ""
            ),
            "",
            "| variant | conc. | requests | throughput (req/s) | p50 (ms) | p95 (ms) | p50 × script | throughput × script | CPU ms/request | errors |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for cell in sorted(mine, key=lambda c: c["concurrency"]):
            # a ZIP variant against the script given the same ZIP (when measured), others against the script
            base = script.get((cell["concurrency"], "script-zip")) if cell["variant"].endswith("-zip") else None
            load, base = cell["load"], base or script.get((cell["concurrency"], "script"))
            p50_ratio = load["p50_ms"] / base["p50_ms"] if base and base["p50_ms"] and load["p50_ms"] else None
            rps_ratio = load["throughput_rps"] / base["throughput_rps"] if base and base["throughput_rps"] else None
            cpu = cell["stages"].get("cpu_ms_per_request", {})
            ours = sum(cpu.get(k, 0.0) for k in ("gateway", "triton", "script", "baseline"))
            lines.append(
                f"| {cell['variant']} | {cell['concurrency']} | {load['requests']} | {load['throughput_rps']:.2f} | {_fmt(load['p50_ms'])} | "
                f"{_fmt(load['p95_ms'])} | {_fmt(p50_ratio, 2)} | {_fmt(rps_ratio, 2)} | {ours:.0f} | {sum(load['errors'].values())} |"
            )
        lines += [
            "",
            "Served stage breakdown, mean ms per request (gateway `medserve_stage_duration_seconds`; Triton statistics per "
            "Triton request, a sliding window sends several), and CPU ms per request by process:",
            "",
            "| variant | conc. | request | " + " | ".join(STAGES) + " | Triton requests | Triton compute_infer | "
            + " | ".join(f"CPU {k}" for k in CPU_KEYS) + " |",
            "|---|---:|---:|" + "---:|" * (len(STAGES) + 2 + len(CPU_KEYS)),
        ]
        for cell in sorted(mine, key=lambda c: c["concurrency"]):
            gateway, triton = cell["stages"].get("gateway_ms", {}), cell["stages"].get("triton", {})
            cpu = cell["stages"].get("cpu_ms_per_request", {})
            lines.append(
                f"| {cell['variant']} | {cell['concurrency']} | {_fmt(gateway.get('request'))} | "
                + " | ".join(_fmt(gateway.get(stage)) for stage in STAGES)
                + f" | {triton.get('requests', '–')} | {_fmt(triton.get('compute_infer_ms'))} | "
                + " | ".join(_fmt(cpu.get(k), 0) for k in CPU_KEYS) + " |"
            )
        check = report.get("agreement", {}).get(mine[0]["model"])
        if check:
            lines += ["", f"The script's mask against the served one on the same bytes: shape {'×'.join(map(str, check['shape']))}, "
                      f"{check['differing_voxels']} voxels differ (Dice {check['dice']}); volume {check['script_volume_ml']} mL "
                      f"(script) vs {check['served_volume_ml']} mL (served)."]
        lines.append("")
    lines += targets_table(report["targets"], "#### Targets")
    return "\n".join(lines) + "\n"


def write_markdown(path: Path, generated: str) -> None:
    """Replace the block between this bench's markers, keeping everything around it; a missing
    block is appended under a "Real-size workloads" heading."""
    replace_block(path, generated, (BEGIN, END), "## Real-size workloads: served vs the in-process script vs PyTorch eager (issue 17)\n\n")
