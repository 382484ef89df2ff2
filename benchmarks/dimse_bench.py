"""Benchmark: the DICOM node — receive rate beside two other storage SCPs, and the time from a
series' last instance to its job's result, by stage.

**Receive rate.** ``--instances`` (200) real 512 × 512 CT instances (~512 KB each, written by
:func:`devtools.dicomgen.write_ct_series`) sent by dcmtk's ``storescu`` over ONE association to
each of three receivers on this machine, each started fresh for every run:

- medserve: ``python -m dimse`` (durable: each instance fsync'd in the spool, renamed, its
  record committed in the SQLite store before the success status);
- pynetdicom's own ``storescp`` console script writing to disk (no fsync; stock options);
- dcmtk's ``storescp`` writing to disk (no fsync; stock options).

``TCP_NODELAY=1`` is in the environment of both ends (dcmtk reads it; without it Nagle's
algorithm caps dcmtk near 22 instances/s on loopback). Runs alternate receivers over
``--repeats`` (5) rounds; medians of instances/s (``--instances`` / the wall time of
``storescu``, association set-up and release included) and the ratios medserve / pynetdicom
(issue 15's target: ≥ 0.5) and medserve / dcmtk, each the median of the per-round ratios. Every received file is counted.

**Series to result.** A real tritonserver and ``python -m gateway.server`` (one worker, one
job worker) share a work directory with ``python -m dimse``, as ``make run`` does; a routes file
sends CT to the 3D segmenter. ``--series`` (3) series of ``--slices`` (100) 512² chest CT
slices are pushed one after the other by ``storescu``; for each, from the store's and the job's
own timestamps: the series' last instance recorded → series complete (the silence timeout, set
to ``--silence-s`` = 1 s here instead of the default 10 s, plus the assembly poll, default 1 s)
→ routed, job queued (routing poll, default 1 s) → claimed by a worker → the model run by stage
(read input, decode, preprocess, infer, postprocess) → result written (encode + fsync) and the
job committed done. Medians over the series.

    .venv/bin/python -m benchmarks.dimse_bench [--instances 200] [--repeats 5] [--series 3] [--slices 100]

Writes ``benchmarks/results/dimse-<UTC>.json`` and the tables between markers in
``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom

from benchmarks.serving import MARKDOWN, PROJECT_ROOT, RESULTS_DIR, wait_until_quiet
from benchmarks.serving.servers import uncapped_env
from devtools.dicomgen import write_ct_series
from devtools.processes import GatewayProcess, ServerProcess, free_port
from devtools.tritonserver import TritonPorts, TritonServer
from dimse.echo import wait_for_echo

BEGIN, END = "<!-- dimse bench: begin (generated) -->", "<!-- dimse bench: end -->"
MODEL = "ct_nodule_segmenter_3d"
RECEIVERS = ("medserve", "pynetdicom", "dcmtk")
TARGET_VS_PYNETDICOM = 0.5
#: The stages of one job's run, as ``gateway.stages`` names them ("receive" is an upload's: 0 for a job).
RUN_STAGES = ("decode", "preprocess", "infer", "postprocess")


def env(**extra: str) -> dict[str, str]:
    """This environment with ``TCP_NODELAY=1`` (dcmtk's switch for it) and ``extra``."""
    return uncapped_env(TCP_NODELAY="1", **extra)


def dimse_process(work: Path, port: int, **settings: str) -> ServerProcess:
    """``python -m dimse`` of this checkout on ``port`` over ``work`` (SQLite store)."""
    environment = env(
        PYTHONPATH=str(PROJECT_ROOT), MEDSERVE_WORK_DIR=str(work), MEDSERVE_DIMSE_PORT=str(port), MEDSERVE_DIMSE_HOST="127.0.0.1",
        MEDSERVE_LOG_LEVEL="warning", **{f"MEDSERVE_{key.upper()}": value for key, value in settings.items()},
    )
    return ServerProcess("medserve dimse", [sys.executable, "-m", "dimse"], env=environment, cwd=PROJECT_ROOT, log=work / "dimse.log")


def receiver(kind: str, folder: Path, port: int) -> tuple[ServerProcess, str, Path]:
    """A receiver of ``kind`` over ``folder``: the process, its AE title, where its files land."""
    folder.mkdir(parents=True)
    if kind == "medserve":
        return dimse_process(folder, port, dimse_series_silence_s="3600"), "MEDSERVE", folder / "spool"
    output = folder / "out"
    output.mkdir()
    if kind == "pynetdicom":
        command = [str(Path(sys.executable).parent / "storescp"), "-aet", "STORESCP", "-od", str(output), str(port)]
    else:
        command = ["storescp", "-aet", "STORESCP", "-od", str(output), str(port)]
    return ServerProcess(kind, command, env=env(), cwd=folder, log=folder / f"{kind}.log"), "STORESCP", output


def received_files(kind: str, where: Path) -> int:
    """Files a receiver wrote (medserve: the spool's instances, not its ``.incoming``)."""
    if kind == "medserve":
        return sum(1 for path in where.rglob("*.dcm") if ".incoming" not in path.parts)
    return sum(1 for path in where.iterdir() if path.is_file())


def storescu(folder: Path, port: int, called_ae: str, timeout_s: float = 600.0) -> float:
    """Send every file of ``folder`` over one association; the wall time in seconds."""
    started = time.perf_counter()
    sent = subprocess.run(["storescu", "-aet", "PACS", "-aec", called_ae, "+sd", "127.0.0.1", str(port), str(folder)],
                          env=env(), capture_output=True, text=True, timeout=timeout_s)
    elapsed = time.perf_counter() - started
    if sent.returncode != 0:
        raise RuntimeError(f"storescu exited {sent.returncode}: {sent.stderr[-2000:]}")
    return elapsed


@dataclass
class RateRun:
    receiver: str
    round: int
    seconds: float
    instances_per_s: float
    files: int


def receive_rates(series: Path, count: int, repeats: int, work: Path) -> list[RateRun]:
    runs: list[RateRun] = []
    for index in range(repeats):
        order = RECEIVERS if index % 2 == 0 else tuple(reversed(RECEIVERS))  # alternate: drift in load falls on all
        for kind in order:
            port = free_port()
            process, ae, where = receiver(kind, work / f"{kind}-{index}", port)
            process.start()
            try:
                if not wait_for_echo("127.0.0.1", port, ae_title=ae, timeout_s=60, alive=lambda p=process: p.alive):
                    raise RuntimeError(f"{kind} did not answer C-ECHO:\n{process.log_tail()}")
                seconds = storescu(series, port, ae)
            finally:
                process.stop()
            files = received_files(kind, where)
            if files != count:
                raise RuntimeError(f"{kind} wrote {files} of {count} instances")
            runs.append(RateRun(kind, index + 1, seconds, count / seconds, files))
            print(f"round {index + 1} {kind}: {count / seconds:.1f} instances/s ({seconds:.2f} s, {files} files)", flush=True)
            shutil.rmtree(where, ignore_errors=True)
    return runs


def summarize_rates(runs: list[RateRun]) -> dict[str, Any]:
    """Median instances/s per receiver, and medserve's ratios to the others as the median of
    the per-round ratios (a round's three runs share the machine's load of the moment)."""
    median = {kind: statistics.median(r.instances_per_s for r in runs if r.receiver == kind) for kind in RECEIVERS}
    rate = {(r.round, r.receiver): r.instances_per_s for r in runs}
    rounds = sorted({r.round for r in runs})
    ratio = {other: statistics.median(rate[k, "medserve"] / rate[k, other] for k in rounds) for other in ("pynetdicom", "dcmtk")}
    return {
        "runs": [vars(r) for r in runs],
        "median_instances_per_s": median,
        "medserve_vs_pynetdicom": ratio["pynetdicom"],
        "medserve_vs_dcmtk": ratio["dcmtk"],
        "target_vs_pynetdicom": TARGET_VS_PYNETDICOM,
    }


def _ms(later: dt.datetime, earlier: dt.datetime) -> float:
    return (later - earlier).total_seconds() * 1000


def series_to_result(slices: int, count: int, silence_s: float, work: Path) -> list[dict[str, float]]:
    """Push ``count`` series of ``slices`` 512² CT to a node on a real Triton; per series the
    milliseconds of each stage from the last instance to the result."""
    from devtools.phantoms import chest_slice
    from jobs.db import database_url, make_engine
    from jobs.received import ReceivedStore
    from jobs.store import JobStore

    node = work / "node"
    node.mkdir(parents=True)
    routes = work / "routes.yaml"
    routes.write_text(f"routes:\n  - {{name: ct, match: {{modality: [CT]}}, models: [{MODEL}]}}\n")
    triton = TritonServer(PROJECT_ROOT / "model_repository", work / "triton", ports=TritonPorts.free(), poll_seconds=0)
    port = free_port()
    dimse = dimse_process(node, port, dimse_series_silence_s=str(silence_s))
    gateway: GatewayProcess | None = None
    measured: list[dict[str, float]] = []
    try:
        triton.start()
        gateway = GatewayProcess(triton.grpc_url, work / "gateway", env=env(), settings={
            "workers": "1", "log_level": "warning", "work_dir": str(node), "routes": str(routes), "job_workers": "1"})
        gateway.start()
        gateway.wait_serving(120)
        dimse.start()
        if not wait_for_echo("127.0.0.1", port, timeout_s=60, alive=lambda: dimse.alive):
            raise RuntimeError(f"the receiver did not answer C-ECHO:\n{dimse.log_tail()}")
        engine = make_engine(database_url(node))
        received, jobs = ReceivedStore(engine), JobStore(engine)
        rng = np.random.default_rng(15)
        for index in range(count):
            volume = np.stack([chest_slice(rng, size=512, nodules=2).hu for _ in range(slices)]).astype(np.float32)
            folder = work / f"series-{index}"
            paths = write_ct_series(folder, volume, spacing_mm=(2.0, 0.7, 0.7))
            series_uid = pydicom.dcmread(paths[0], stop_before_pixels=True).SeriesInstanceUID
            storescu(folder, port, "MEDSERVE")
            sent_at = dt.datetime.now(dt.timezone.utc)
            deadline = time.monotonic() + 600
            while not (found := jobs.list(series_uid=series_uid)) or found[0].state not in ("done", "failed"):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no finished job for series {index} after 600 s: {found}")
                time.sleep(0.05)
            observed_at = dt.datetime.now(dt.timezone.utc)
            job = found[0]
            if job.state != "done":
                raise RuntimeError(f"the job failed: {job.error_code}")
            series = received.series(series_uid)
            timings = job.timings_ms
            run = {stage: float(timings.get(stage, 0.0)) for stage in RUN_STAGES}
            stages = {
                "receive (first → last instance recorded)": _ms(series.last_received_at, series.first_received_at),
                "storescu exited after the last instance recorded": _ms(sent_at, series.last_received_at),
                "series complete (silence + assembly poll)": _ms(series.completed_at, series.last_received_at),
                "routed, job queued (routing poll)": _ms(job.created_at, series.completed_at),
                "claimed by a worker": _ms(job.started_at, job.created_at),
                "read input (before the job's clock) + job committed done": _ms(job.finished_at, job.started_at) - float(timings["total"]),
                **{f"run: {stage}": value for stage, value in run.items()},
                "run: encode + write result (fsync)": float(timings["total"]) - sum(run.values()),
                "last instance → result (total)": _ms(job.finished_at, series.last_received_at),
                "result seen done by a 50 ms poll": _ms(observed_at, job.finished_at),
            }
            measured.append(stages)
            print(f"series {index + 1}: last instance → result {stages['last instance → result (total)']:.0f} ms "
                  f"({', '.join(f'{k} {v:.0f}' for k, v in stages.items())})", flush=True)
            shutil.rmtree(folder, ignore_errors=True)
        engine.dispose()
    finally:
        dimse.stop()
        if gateway is not None:
            gateway.stop()
        triton.stop()
    return measured


def render(report: dict[str, Any]) -> str:
    rates = report["receive"]
    median = rates["median_instances_per_s"]
    ratio = rates["medserve_vs_pynetdicom"]
    lines = [
        BEGIN,
        f"Run `{report['run']}`: `{report['command']}`; {report['instances']} × 512² CT ({report['instance_kb']:.0f} KB each) "
        f"over one dcmtk `storescu` association, `TCP_NODELAY=1` at both ends, {report['repeats']} alternating rounds; "
        f"load average at start {report['load_at_start']:.2f}; {os.cpu_count()} CPUs.",
        "",
        "| receiver | writes | instances/s (median) | medserve / it (median of rounds) |",
        "|---|---|---:|---:|",
        f"| medserve `python -m dimse` | spool, fsync'd + renamed, SQLite record committed before success | {median['medserve']:.1f} | — |",
        f"| pynetdicom `storescp` | files, no fsync | {median['pynetdicom']:.1f} | {ratio:.2f} (target ≥ {TARGET_VS_PYNETDICOM}: "
        f"{'met' if ratio >= TARGET_VS_PYNETDICOM else 'not met'}) |",
        f"| dcmtk `storescp` | files, no fsync | {median['dcmtk']:.1f} | {rates['medserve_vs_dcmtk']:.2f} |",
        "",
        f"From the last instance of a {report['slices']}-slice 512² CT series to its job's result, {MODEL} on tritonserver, "
        f"silence timeout {report['silence_s']:g} s (the default is 10 s), assembly and routing polls at their 1 s defaults, the job workers' claim poll at 0.5 s; "
        f"median of {report['series']} series (ms):",
        "",
        "| stage | ms |",
        "|---|---:|",
    ]
    for stage, value in report["series_to_result"]["median_ms"].items():
        lines.append(f"| {stage} | {value:.0f} |")
    lines.append(END)
    return "\n".join(lines)


def write_markdown(text: str) -> None:
    current = MARKDOWN.read_text() if MARKDOWN.exists() else "# Benchmarks\n"
    if BEGIN in current and END in current:
        head, _, rest = current.partition(BEGIN)
        _, _, tail = rest.partition(END)
        current = head + text + tail
    else:
        current = current.rstrip() + "\n\n## The DICOM node: receive rate and series to result\n\n" + text + "\n"
    MARKDOWN.write_text(current)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--series", type=int, default=3)
    parser.add_argument("--slices", type=int, default=100)
    parser.add_argument("--silence-s", type=float, default=1.0)
    parser.add_argument("--no-markdown", action="store_true", help="do not rewrite docs/benchmarks.md")
    args = parser.parse_args(argv)
    if shutil.which("storescu") is None or shutil.which("storescp") is None:
        print("dcmtk (storescu, storescp) is not installed: apt-get install dcmtk", file=sys.stderr)
        return 2
    load = wait_until_quiet(120)
    with tempfile.TemporaryDirectory(prefix="medserve-dimse-bench-") as scratch:  # on disk here, not tmpfs: fsync costs
        work = Path(scratch)
        rng = np.random.default_rng(0)
        volume = rng.integers(-1000, 1500, size=(args.instances, 512, 512)).astype(np.float32)
        paths = write_ct_series(work / "rate-series", volume, spacing_mm=(1.0, 0.7, 0.7))
        instance_kb = statistics.mean(path.stat().st_size for path in paths) / 1024
        del volume
        rates = summarize_rates(receive_rates(work / "rate-series", args.instances, args.repeats, work / "rate"))
        measured = series_to_result(args.slices, args.series, args.silence_s, work / "latency")
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    report = {
        "run": stamp, "command": "python -m benchmarks.dimse_bench " + " ".join(argv if argv is not None else sys.argv[1:]),
        "instances": args.instances, "instance_kb": instance_kb, "repeats": args.repeats, "series": args.series, "slices": args.slices,
        "silence_s": args.silence_s, "load_at_start": load, "receive": rates,
        "series_to_result": {"series": measured, "median_ms": {k: statistics.median(m[k] for m in measured) for k in measured[0]}},
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / f"dimse-{stamp}.json").write_text(json.dumps(report, indent=2, default=str))
    text = render(report)
    print(text)
    if not args.no_markdown:
        write_markdown(text)
    return 0 if rates["medserve_vs_pynetdicom"] >= TARGET_VS_PYNETDICOM else 1


if __name__ == "__main__":
    sys.exit(main())
