"""The bench's report: the result as JSON (``benchmarks/results/<UTC>.json``) and as Markdown
between the generated-block markers of ``docs/benchmarks.md``.

Only the block between the markers is generated; the hand-written text around it (what is
measured, how to read it) is kept, so the document explains figures it does not own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .stages import STAGES, TRITON_STAGES

BEGIN, END = "<!-- medserve bench: begin (generated) -->", "<!-- medserve bench: end -->"


def write_json(report: dict[str, Any], results_dir: Path) -> Path:
    """``results_dir/<timestamp_utc>.json``, the whole report."""
    results_dir.mkdir(parents=True, exist_ok=True)
    out = results_dir / f"{report['timestamp_utc']}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    return out


def _fmt(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def render_markdown(report: dict[str, Any]) -> str:
    """The generated block: the machine, per model its load table (× the baseline), its stage
    breakdown and its CPU per request, then the targets."""
    machine = report["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items() if v)
    lines = [
        f"Run `{report['timestamp_utc']}` ({report['wall_s']:.0f} s), `benchmarks/results/{report['timestamp_utc']}.json`.",
        "",
        "| machine | |",
        "|---|---|",
        f"| CPU | {machine['cpu_model']}, {machine['logical_cpus']} logical CPUs |",
        f"| memory | {machine['memory_gib']} GiB |",
        f"| OS | {machine['platform']} |",
        f"| load average (1/5/15 min) | start {', '.join(map(str, machine['load_average_at_start']))}; end {', '.join(map(str, machine['load_average_at_end']))} |",
        f"| other processes during the measurements | {_fmt(machine.get('other_cpu_share'), 2)} CPUs on average |",
        f"| versions | Python {machine['python']}, {versions} |",
        "",
        "Variants: " + "; ".join(f"**({k})** {v['label']}: {v['description']}" for k, v in report["variants"].items()) + ".",
        "",
    ]
    cells = report["cells"]
    for model, inputs in report["inputs"].items():
        lines += [
            f"### {model}",
            "",
            f"Inputs (round robin): {', '.join(inputs)}. Per measurement at most "
            f"{report['settings']['max_requests'][model]} requests or {report['settings']['seconds_per_measurement'][model]:g} s "
            "(throughput over that window; requests still in flight then are waited for and their latencies count).",
            "",
            "| variant | concurrency | requests | throughput (req/s) | × (a) | p50 (ms) | p95 (ms) | p99 (ms) | errors |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        base = {c["concurrency"]: c["load"]["throughput_rps"] for c in cells if c["model"] == model and c["variant"] == "a"}
        for cell in sorted((c for c in cells if c["model"] == model), key=lambda c: (c["concurrency"], c["variant"])):
            load = cell["load"]
            ratio = load["throughput_rps"] / base[cell["concurrency"]] if base.get(cell["concurrency"]) else None
            lines.append(
                f"| ({cell['variant']}) {report['variants'][cell['variant']]['label']} | {cell['concurrency']} | {load['requests']} | "
                f"{load['throughput_rps']:.1f} | {_fmt(ratio, 2)} | {_fmt(load['p50_ms'])} | {_fmt(load['p95_ms'])} | "
                f"{_fmt(load['p99_ms'])} | {sum(load['errors'].values())} |"
            )
        lines += [
            "",
            f"Stage breakdown of {model}, mean ms per request: the gateway's `medserve_stage_duration_seconds` and "
            "Triton's statistics over the same measurement; *outside* = client p50 − Triton compute_infer.",
            "",
            "| variant | conc. | p50 | receive | decode | preprocess | infer (gateway) | postprocess | Triton queue | "
            "compute_input | compute_infer | compute_output | batch size | outside compute |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for cell in sorted((c for c in cells if c["model"] == model and c["variant"] != "a"), key=lambda c: (c["concurrency"], c["variant"])):
            gateway, triton = cell["stages"].get("gateway_ms", {}), cell["stages"].get("triton", {})
            p50 = cell["load"]["p50_ms"]
            compute = triton.get("compute_infer_ms")
            outside = f"{1 - compute / p50:.0%}" if compute and p50 else "–"
            lines.append(
                f"| ({cell['variant']}) | {cell['concurrency']} | {_fmt(p50)} | "
                + " | ".join(_fmt(gateway.get(stage), 2) for stage in STAGES)
                + " | "
                + " | ".join(_fmt(triton.get(f"{stage}_ms"), 2) for stage in TRITON_STAGES)
                + f" | {_fmt(triton.get('mean_batch_size'), 2)} | {outside} |"
            )
        lines += [
            "",
            f"CPU of {model}, ms per answered request (Linux /proc over the same measurement): each variant's "
            "server processes, the load generator, and *other* = the rest of the machine (not ours: a noise gauge).",
            "",
            "| variant | conc. | baseline | gateway | tritonserver | load generator | other |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for cell in sorted((c for c in cells if c["model"] == model), key=lambda c: (c["concurrency"], c["variant"])):
            cpu = cell["stages"].get("cpu_ms_per_request", {})
            lines.append(
                f"| ({cell['variant']}) | {cell['concurrency']} | "
                + " | ".join(_fmt(cpu.get(key), 2) for key in ("baseline", "gateway", "triton", "client", "other"))
                + " |"
            )
        lines.append("")
    lines += targets_table(report["targets"], "### Targets")
    return "\n".join(lines) + "\n"


def targets_table(targets: list[dict], heading: str) -> list[str]:
    """The Markdown lines of a bench's targets under ``heading`` (e.g. ``### Targets``)."""
    lines = [heading, "", "| target | measured | met |", "|---|---|---|"]
    lines += [f"| {t['target']} | {t['measured']} | {'yes' if t['met'] else '**no**'} |" for t in targets]
    return lines


def replace_block(path: Path, generated: str, markers: tuple[str, str] = (BEGIN, END), new_section: str = "") -> None:
    """Replace the generated block of ``path`` between ``markers``, keeping the hand-written
    text around it; a missing block is appended (after ``new_section``, a heading), a missing
    file created."""
    begin, end = markers
    text = path.read_text() if path.exists() else ""
    block = f"{begin}\n{generated}{end}\n"
    if begin in text and end in text:
        head, _, rest = text.partition(begin)
        _, _, tail = rest.partition(end)
        text = head + block + tail.lstrip("\n")
    else:
        text = (text.rstrip() + "\n\n" if text else "# Benchmarks\n\n") + new_section + block
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def write_markdown(path: Path, generated: str) -> None:
    """Replace the serving bench's generated block of ``path`` (:func:`replace_block`)."""
    replace_block(path, generated)
