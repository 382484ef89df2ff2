"""Benchmark: what the hardened intake costs — the gateway before and after, side by side in one run.

The "after" gateway is this tree: compressed pixel data decoded in the decoder processes,
headers validated before allocation, uploads and request heads bounded. The "before" gateway
is the same program at ``--base`` (a commit before the intake was hardened), checked out in
a git worktree and started from there with the same virtual environment. Both talk to one
tritonserver and serve the same demo classifier (FP32, dynamic batching), so the only
difference between them is the gateway's own code.

Inputs: real 512 × 512 CT slices written by others — pydicom-data's ``693_UNCI.dcm``
(uncompressed) and ``693_J2KI.dcm`` (JPEG 2000, decoded by OpenJPEG / gdcm: in-process before,
in a decoder process after). Per input, closed-loop clients at concurrency ``--concurrency``
(16) for ``--seconds`` per round, the two gateways taking turns (ABBA…) over ``--rounds``
rounds so that the load of a shared machine falls on both alike; the throughput ratio
after/before is the median of the per-round ratios. Also reported: p50 / p99 latency and the
gateway's CPU per request (its process tree: the gateway and, after, its decoder processes).

Targets (issue 12): after ≥ 0.90 × before on uncompressed input, ≥ 0.80 × before on JPEG 2000.

    .venv/bin/python -m benchmarks.intake_bench [--base db0e830] [--rounds 3] [--seconds 12]

Writes ``benchmarks/results/intake-<UTC>.json`` and the table between markers in
``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.serving import MARKDOWN, PROJECT_ROOT, RESULTS_DIR, Payload, closed_loop, wait_until_quiet
from benchmarks.serving.servers import uncapped_env
from devtools.processes import GatewayProcess
from devtools.testdata import pydicom_test_file
from devtools.tritonserver import TritonPorts, TritonServer

BEGIN, END = "<!-- intake bench: begin (generated) -->", "<!-- intake bench: end -->"
#: The last commit before issue 12's intake work (the session's starting point).
DEFAULT_BASE = "db0e830"
MODEL = "ct_nodule_classifier"
INPUTS = {"uncompressed": "693_UNCI.dcm", "jpeg2000": "693_J2KI.dcm"}
TARGETS = {"uncompressed": 0.90, "jpeg2000": 0.80}


def start_gateway(source: Path, triton_grpc_url: str, work: Path) -> GatewayProcess:
    """``python -m gateway.server`` of the checkout ``source`` (one worker, without this
    environment's thread caps), its log in ``work``, serving once ``/readyz`` answers."""
    gateway = GatewayProcess(
        triton_grpc_url, work, source=source, settings={"workers": "1", "log_level": "warning"}, env=uncapped_env()
    )
    gateway.start()
    gateway.wait_serving(90)
    return gateway


@dataclass
class Round:
    side: str
    throughput_rps: float
    p50_ms: float | None
    p99_ms: float | None
    cpu_ms_per_request: float | None
    errors: dict[str, int]


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU seconds of ``root`` and every live descendant (the gateway, its decoder
    zygote and workers, which run in sessions of their own), each with the CPU of the children
    it has reaped (recycled decoder workers), from Linux /proc."""
    stats: dict[int, tuple[int, int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        ticks = int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])  # utime, stime, cutime, cstime
        stats[int(stat.parent.name)] = (int(fields[1]), ticks)
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, (ppid, _) in stats.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier += children
    return sum(stats[pid][1] for pid in tree if pid in stats) / os.sysconf("SC_CLK_TCK")


def measure(gateway: GatewayProcess, payload: Payload, concurrency: int, seconds: float) -> Round:
    url = f"{gateway.url}/v1/models/{MODEL}/predict"
    asyncio.run(closed_loop(url, [payload], concurrency, 10**9, 2.0))  # warm connections and caches
    cpu_before = tree_cpu_seconds(gateway.pid)
    result = asyncio.run(closed_loop(url, [payload], concurrency, 10**9, seconds))
    cpu = tree_cpu_seconds(gateway.pid) - cpu_before
    return Round(
        side="",
        throughput_rps=result.throughput_rps,
        p50_ms=result.percentile_ms(50),
        p99_ms=result.percentile_ms(99),
        cpu_ms_per_request=cpu * 1000 / result.requests if result.requests else None,
        errors=result.errors,
    )


def worktree(base: str, destination: Path) -> Path:
    subprocess.run(["git", "-C", str(PROJECT_ROOT), "worktree", "add", "--detach", str(destination), base], check=True, capture_output=True)
    return destination


def run(base: str, rounds: int, seconds: float, concurrency: int, work: Path) -> dict[str, Any]:
    payloads = {kind: Payload(kind, pydicom_test_file(name).read_bytes(), "application/dicom") for kind, name in INPUTS.items()}
    before_tree = worktree(base, work / "before")
    triton = TritonServer(PROJECT_ROOT / "model_repository", work / "triton", ports=TritonPorts.free(), poll_seconds=0)
    gateways: dict[str, GatewayProcess] = {}
    try:
        triton.start()
        for side, source in (("before", before_tree), ("after", PROJECT_ROOT)):
            gateways[side] = start_gateway(source, triton.grpc_url, work / "gateways")
        results: dict[str, Any] = {}
        for kind, payload in payloads.items():
            measured: list[Round] = []
            for index in range(rounds):
                order = ("before", "after") if index % 2 == 0 else ("after", "before")  # ABBA: drift in load falls on both
                for side in order:
                    cell = measure(gateways[side], payload, concurrency, seconds)
                    cell.side = side
                    measured.append(cell)
                    print(f"{kind} round {index + 1} {side}: {cell.throughput_rps:.1f} req/s, p99 {cell.p99_ms or 0:.1f} ms, "
                          f"{cell.cpu_ms_per_request or 0:.2f} ms CPU/request, errors {cell.errors}", flush=True)
            by_side = {side: [m for m in measured if m.side == side] for side in ("before", "after")}
            ratios = [a.throughput_rps / b.throughput_rps for a, b in zip(by_side["after"], by_side["before"]) if b.throughput_rps]
            results[kind] = {
                "rounds": [vars(m) for m in measured],
                **{
                    side: {
                        "throughput_rps": statistics.median(m.throughput_rps for m in cells),
                        "p50_ms": statistics.median(m.p50_ms or 0 for m in cells),
                        "p99_ms": statistics.median(m.p99_ms or 0 for m in cells),
                        "cpu_ms_per_request": statistics.median(m.cpu_ms_per_request or 0 for m in cells),
                    }
                    for side, cells in by_side.items()
                },
                "ratio_after_before": statistics.median(ratios) if ratios else None,
                "target": TARGETS[kind],
            }
        return results
    finally:
        for gateway in gateways.values():
            gateway.stop()
        triton.stop()
        subprocess.run(["git", "-C", str(PROJECT_ROOT), "worktree", "remove", "--force", str(before_tree)], capture_output=True)


def render(report: dict[str, Any]) -> str:
    lines = [
        BEGIN,
        f"Run `{report['run']}`: `{report['command']}`; before = `{report['base']}`, after = this tree; "
        f"{MODEL} (FP32, dynamic batching), concurrency {report['concurrency']}, {report['rounds']} ABBA rounds of "
        f"{report['seconds']:.0f} s; load average at start {report['load_at_start']:.2f}.",
        "",
        "| input | before req/s | after req/s | after / before (median of rounds) | target | met | p99 before / after (ms) | gateway CPU incl. decoder processes, before / after (ms/request) |",
        "|---|---:|---:|---:|---:|---|---:|---:|",
    ]
    for kind, result in report["results"].items():
        ratio = result["ratio_after_before"]
        lines.append(
            f"| {kind} 512² CT | {result['before']['throughput_rps']:.1f} | {result['after']['throughput_rps']:.1f} | "
            f"{ratio:.3f} | ≥ {result['target']:.2f} | {'yes' if ratio is not None and ratio >= result['target'] else 'no'} | "
            f"{result['before']['p99_ms']:.1f} / {result['after']['p99_ms']:.1f} | "
            f"{result['before']['cpu_ms_per_request']:.2f} / {result['after']['cpu_ms_per_request']:.2f} |"
        )
    lines.append(END)
    return "\n".join(lines)


def write_markdown(text: str) -> None:
    current = MARKDOWN.read_text() if MARKDOWN.exists() else "# Benchmarks\n"
    if BEGIN in current and END in current:
        head, _, rest = current.partition(BEGIN)
        _, _, tail = rest.partition(END)
        current = head + text + tail
    else:
        current = current.rstrip() + "\n\n## Intake hardening: before / after in one run\n\n" + text + "\n"
    MARKDOWN.write_text(current)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default=DEFAULT_BASE, help="the 'before' commit")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--no-markdown", action="store_true", help="do not rewrite docs/benchmarks.md")
    args = parser.parse_args(argv)
    load = wait_until_quiet(120)
    with tempfile.TemporaryDirectory(prefix="medserve-intake-bench-") as scratch:
        results = run(args.base, args.rounds, args.seconds, args.concurrency, Path(scratch))
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    report = {
        "run": stamp, "command": "python -m benchmarks.intake_bench " + " ".join(argv or sys.argv[1:]), "base": args.base,
        "rounds": args.rounds, "seconds": args.seconds, "concurrency": args.concurrency, "load_at_start": load, "results": results,
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / f"intake-{stamp}.json").write_text(json.dumps(report, indent=2))
    text = render(report)
    print(text)
    if not args.no_markdown:
        write_markdown(text)
    missed = [kind for kind, r in results.items() if r["ratio_after_before"] is None or r["ratio_after_before"] < r["target"]]
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
