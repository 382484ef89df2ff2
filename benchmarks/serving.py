"""``medserve bench``: medserve against the naive baseline, side by side, in one run.

Every variant answers the same real DICOM over HTTP on 127.0.0.1, driven by one closed-loop
load generator (``concurrency`` clients, each sending its next request when the last one was
answered), with a bounded request count and time per measurement:

- ``a`` **baseline**: FastAPI + pydicom + the PyTorch model eagerly in-process per request
  (:mod:`benchmarks.baseline`; MONAI ``sliding_window_inference`` for 3D), one uvicorn worker;
- ``b`` **medserve, no batching**: gateway + Triton over a copy of the repository whose
  ``config.pbtxt`` has no ``dynamic_batching`` block;
- ``c`` **medserve**: gateway + Triton with dynamic batching (FP32), as deployed;
- ``d`` **medserve INT8**: the same server, the ``<model>_int8`` variant;
- ``e`` **medserve INT8, two gateways**: (d) behind two gateway processes sharing that
  tritonserver (how the gateway scales: more replicas), for the 2D classifier, whose single
  gateway process is the bottleneck.

All servers are up during the whole run, each in its own processes on free ports, and the
variants take turns per (model, concurrency), so that a noisy neighbour falls on all of them
alike. Around each measurement the gateway's ``medserve_stage_duration_seconds`` histograms
(``/metrics``) and Triton's per-model statistics (``/v2/models/<m>/stats``) are read, so the
time outside model compute is visible. Results: ``benchmarks/results/<UTC>.json`` and the
generated part of ``docs/benchmarks.md``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from export.spec import Precision
from export.triton.config import parse, render
from export.triton.model_dir import RUNNER_SOURCE
from export.variants import model_name, model_names

from devtools.tritonserver import TritonPorts, TritonServer, stop_group

PROJECT_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = PROJECT_ROOT / "benchmarks" / "results"
MARKDOWN = PROJECT_ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- medserve bench: begin (generated) -->", "<!-- medserve bench: end -->"

CLASSIFIER = "ct_nodule_classifier"
SEGMENTER_3D = "ct_nodule_segmenter_3d"
MODELS = (CLASSIFIER, SEGMENTER_3D)
CONCURRENCY = (1, 4, 16, 32)
STAGES = ("receive", "decode", "preprocess", "infer", "postprocess")
TRITON_STAGES = ("queue", "compute_input", "compute_infer", "compute_output")


@dataclass(frozen=True)
class Variant:
    key: str
    label: str
    description: str


VARIANTS = (
    Variant("a", "baseline", "FastAPI + pydicom + PyTorch eager in-process, 1 uvicorn worker"),
    Variant("b", "no batching", "gateway + Triton, FP32, config without dynamic_batching"),
    Variant("c", "dynamic batching", "gateway + Triton, FP32, dynamic batching (as deployed)"),
    Variant("d", "INT8", "gateway + Triton, the _int8 variant, dynamic batching"),
    Variant("e", "INT8, 2 gateways", "(d) behind two gateway processes, clients split between them as a Service splits connections"),
)


# ---------------------------------------------------------------------------------------------
# Inputs: real DICOM, as bodies the gateway and the baseline both accept.


@dataclass(frozen=True)
class Payload:
    name: str
    body: bytes
    content_type: str


def multipart_form(files: Sequence[tuple[str, bytes]], field_name: str = "files") -> tuple[bytes, str]:
    """A ``multipart/form-data`` body with one ``application/dicom`` file field per file."""
    boundary = "medserve-bench-" + os.urandom(8).hex()
    chunks = []
    for filename, data in files:
        chunks.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field_name}"; filename="{filename}"\r\n'
            "Content-Type: application/dicom\r\n\r\n".encode()
        )
        chunks += [data, b"\r\n"]
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"


def classifier_payloads() -> list[Payload]:
    """Two real CT slices written by others: pydicom-data's 512×512 ``693_UNCI.dcm`` and
    pydicom's 128×128 ``CT_small.dcm``."""
    from devtools.testdata import pydicom_test_file

    return [Payload(name, pydicom_test_file(name).read_bytes(), "application/dicom") for name in ("693_UNCI.dcm", "CT_small.dcm")]


def series_payloads(directory: Path, count: int = 2, slices: int = 32, size: int = 96, spacing_mm: float = 2.0) -> list[Payload]:
    """``count`` phantom chest-CT series (``devtools.dicomgen.write_ct_series``, shuffled
    instance order), each ``slices`` × ``size``² at ``spacing_mm``, as multipart/form-data."""
    from devtools.dicomgen import write_ct_series
    from devtools.phantoms import chest_volume

    payloads = []
    for k in range(count):
        rng = np.random.default_rng(100 + k)
        volume, _ = chest_volume(rng, slices, size=size, nodules=2, field_of_view_mm=size * spacing_mm)
        paths = write_ct_series(directory / f"series_{k}", volume, spacing_mm=(spacing_mm,) * 3, shuffle_seed=k)
        body, content_type = multipart_form([(p.name, p.read_bytes()) for p in paths])
        payloads.append(Payload(f"phantom series {k} ({slices}×{size}×{size}, {spacing_mm:g} mm)", body, content_type))
    return payloads


# ---------------------------------------------------------------------------------------------
# The closed-loop load generator.


@dataclass
class LoadResult:
    """Latencies of every answered request, and throughput over the measurement window: the
    requests answered before the time limit (or, when the request limit came first, all of
    them, over the time until the last answer). Requests still in flight at the time limit
    are waited for, so that they cannot load the next measurement, and their latencies count."""

    concurrency: int
    latencies_s: list[float]
    errors: dict[str, int]
    window_s: float
    answered_in_window: int
    drain_s: float = 0.0

    @property
    def requests(self) -> int:
        return len(self.latencies_s)

    @property
    def throughput_rps(self) -> float:
        return self.answered_in_window / self.window_s if self.window_s > 0 else 0.0

    def percentile_ms(self, q: float) -> float | None:
        return float(np.percentile(self.latencies_s, q) * 1000) if self.latencies_s else None

    def summary(self) -> dict[str, Any]:
        return {
            "concurrency": self.concurrency,
            "requests": self.requests,
            "errors": dict(self.errors),
            "window_s": round(self.window_s, 3),
            "answered_in_window": self.answered_in_window,
            "drain_s": round(self.drain_s, 3),
            "throughput_rps": round(self.throughput_rps, 3),
            "mean_ms": round(float(np.mean(self.latencies_s)) * 1000, 3) if self.latencies_s else None,
            **{f"p{q}_ms": _round(self.percentile_ms(q)) for q in (50, 95, 99)},
        }


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


async def closed_loop(
    url: str | Sequence[str],
    payloads: Sequence[Payload],
    concurrency: int,
    max_requests: int,
    max_seconds: float,
    check: Callable[[bytes], bool] | None = None,
) -> LoadResult:
    """``concurrency`` clients on keep-alive connections, each POSTing its next payload (round
    robin, staggered per client) as soon as the previous answer arrived, until
    ``max_requests`` were sent or ``max_seconds`` passed. Only 200 answers (that pass
    ``check``) count as latencies; anything else is an error. With several URLs (replicas),
    client ``i`` talks to ``urls[i % len(urls)]``."""
    import aiohttp

    urls = [url] if isinstance(url, str) else list(url)
    latencies: list[float] = []
    answered_at: list[float] = []
    errors: dict[str, int] = {}
    sent = 0
    started = time.perf_counter()
    deadline = started + max_seconds
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=max(120.0, max_seconds * 4))

    async def client(index: int, session: aiohttp.ClientSession) -> None:
        nonlocal sent
        k = index
        while sent < max_requests and time.perf_counter() < deadline:
            sent += 1
            payload = payloads[k % len(payloads)]
            k += 1
            t0 = time.perf_counter()
            try:
                async with session.post(urls[index % len(urls)], data=payload.body, headers={"Content-Type": payload.content_type}) as response:
                    body = await response.read()
                    status = response.status
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                continue
            t1 = time.perf_counter()
            if status != 200:
                errors[str(status)] = errors.get(str(status), 0) + 1
            elif check is not None and not check(body):
                errors["unexpected_answer"] = errors.get("unexpected_answer", 0) + 1
            else:
                latencies.append(t1 - t0)
                answered_at.append(t1)

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(client(i, session) for i in range(concurrency)))
    finished = time.perf_counter()
    if sent >= max_requests and (not answered_at or max(answered_at) <= deadline):
        window_end = max(answered_at, default=finished)  # the request limit came first
    else:
        window_end = deadline
    in_window = sum(1 for t in answered_at if t <= window_end)
    return LoadResult(concurrency, latencies, errors, window_end - started, in_window, max(finished - window_end, 0.0))


# ---------------------------------------------------------------------------------------------
# Where the time goes: the gateway's stage histograms and Triton's statistics.


def _get(url: str, timeout_s: float = 10.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        return response.read()


def gateway_stage_totals(metrics_text: str, model: str) -> dict[str, tuple[float, float]]:
    """``{stage: (seconds, count)}`` from ``medserve_stage_duration_seconds`` for ``model``, plus
    ``"request"`` from ``medserve_request_duration_seconds`` (the predict route, 2xx)."""
    from prometheus_client.parser import text_string_to_metric_families

    totals: dict[str, list[float]] = {}
    for family in text_string_to_metric_families(metrics_text):
        if family.name not in ("medserve_stage_duration_seconds", "medserve_request_duration_seconds"):
            continue
        for sample in family.samples:
            if sample.labels.get("model") != model or not sample.name.endswith(("_sum", "_count")):
                continue
            if family.name == "medserve_stage_duration_seconds":
                key = sample.labels["stage"]
            elif sample.labels.get("status_class") == "2xx" and sample.labels.get("route", "").endswith("/predict"):
                key = "request"
            else:
                continue
            slot = totals.setdefault(key, [0.0, 0.0])
            slot[0 if sample.name.endswith("_sum") else 1] += sample.value
    return {key: (value[0], value[1]) for key, value in totals.items()}


def triton_model_totals(stats: dict[str, Any]) -> dict[str, Any]:
    """Cumulative counters of one model from Triton's ``/v2/models/<m>/stats`` answer."""
    entry = stats["model_stats"][0]
    inference = entry["inference_stats"]
    return {
        "inference_count": int(entry.get("inference_count", 0)),
        "execution_count": int(entry.get("execution_count", 0)),
        "success_count": int(inference["success"].get("count", 0)),
        **{f"{stage}_ns": int(inference[stage].get("ns", 0)) for stage in TRITON_STAGES},
    }


def stage_breakdown(
    gateway_before: dict[str, tuple[float, float]] | None,
    gateway_after: dict[str, tuple[float, float]] | None,
    triton_before: dict[str, Any] | None,
    triton_after: dict[str, Any] | None,
) -> dict[str, Any]:
    """Mean milliseconds per request per stage over one measurement (after − before)."""
    result: dict[str, Any] = {}
    if gateway_before is not None and gateway_after is not None:
        gateway = {}
        for key, (seconds, count) in gateway_after.items():
            seconds0, count0 = gateway_before.get(key, (0.0, 0.0))
            if count - count0 > 0:
                gateway[key] = round((seconds - seconds0) / (count - count0) * 1000, 3)
        result["gateway_ms"] = gateway
    if triton_before is not None and triton_after is not None:
        delta = {key: triton_after[key] - triton_before[key] for key in triton_after}
        requests = delta["success_count"]
        triton: dict[str, Any] = {"requests": requests, "executions": delta["execution_count"]}
        if requests > 0:
            for stage in TRITON_STAGES:
                triton[f"{stage}_ms"] = round(delta[f"{stage}_ns"] / requests / 1e6, 3)
            triton["compute_ms"] = round(sum(triton[f"{s}_ms"] for s in TRITON_STAGES[1:]), 3)
        if delta["execution_count"] > 0:
            triton["mean_batch_size"] = round(delta["inference_count"] / delta["execution_count"], 2)
        result["triton"] = triton
    return result


# ---------------------------------------------------------------------------------------------
# Servers, each in its own process group.


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU seconds of every live process in process group ``pgid`` (Linux /proc)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields after the command: state, ppid, pgrp, ...
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _CLOCK_TICKS


def machine_busy_seconds() -> float:
    """CPU seconds all CPUs ran anything since boot (/proc/stat: user, nice, system, irq,
    softirq; not idle, iowait, steal, nor guest, which user already counts)."""
    user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in Path("/proc/stat").read_text().split()[1:8])
    return (user + nice + system + irq + softirq) / _CLOCK_TICKS


def wait_until_quiet(max_wait_s: float, load_below: float = 1.5, log: Callable[[str], None] = print) -> float:
    """Wait (at most ``max_wait_s``) until the 1-minute load average is below ``load_below``;
    returns the load average when done waiting."""
    deadline = time.monotonic() + max_wait_s
    load = os.getloadavg()[0]
    if load >= load_below and max_wait_s > 0:
        log(f"load average {load:.2f}: waiting up to {max_wait_s:.0f}s for it to drop below {load_below}")
    while load >= load_below and time.monotonic() < deadline:
        time.sleep(5)
        load = os.getloadavg()[0]
    return load


def free_port() -> int:
    return TritonPorts.free().http


def _server_env(**extra: str) -> dict[str, str]:
    """This environment without thread caps (every server runs at the machine's defaults)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH", "")]))
    env.update(extra)
    return env


GATEWAY_APP = "gateway.main:create_app"


class UvicornServer:
    """``uvicorn --factory <app>`` (the gateway: ``python -m gateway.server``) in its own
    session, logging to a file."""

    def __init__(self, app: str, log_file: Path, env: dict[str, str], workers: int = 1) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_file = log_file
        if app == GATEWAY_APP:  # as deployed: its launcher, which sets up metrics for several workers
            command = [sys.executable, "-m", "gateway.server"]
            env = {**env, "MEDSERVE_HOST": "127.0.0.1", "MEDSERVE_PORT": str(self.port), "MEDSERVE_WORKERS": str(workers)}
        else:
            command = [sys.executable, "-m", "uvicorn", "--factory", app, "--host", "127.0.0.1", "--port", str(self.port), "--no-access-log"]
            if workers > 1:
                command += ["--workers", str(workers)]
        with open(log_file, "ab") as log:
            self.process = subprocess.Popen(
                command, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )

    def wait_ready(self, path: str = "/healthz", timeout_s: float = 120.0) -> "UvicornServer":
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.url} exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if urllib.request.urlopen(self.url + path, timeout=2).status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"{self.url}{path} not ready after {timeout_s:.0f}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])

    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        stop_group(self.process)


def no_batching_config(config_text: str) -> str:
    """A rendered ``config.pbtxt`` rendered again without its ``dynamic_batching`` block, by
    export's own renderer (:func:`export.triton.config.render`)."""
    return render(parse(config_text), dynamic_batching=False)


def bench_repository(source: Path, destination: Path, models: Iterable[str], dynamic_batching: bool = True) -> Path:
    """A temporary model repository holding copies of ``models`` from ``source``; without
    ``dynamic_batching`` each config is rendered again without it. Every version's
    ``model.py`` is the runner of this source tree (``export/triton/onnx_runner.py``, what
    ``medserve export`` writes), so the bench measures the code as it is now."""
    shutil.rmtree(destination, ignore_errors=True)  # a kept work dir of an earlier run
    destination.mkdir(parents=True)
    runner = RUNNER_SOURCE.read_bytes()
    for name in models:
        target = destination / name
        shutil.copytree(source / name, target, ignore=shutil.ignore_patterns("__pycache__", "configs"))
        if not dynamic_batching:
            config = target / "config.pbtxt"
            config.write_text(no_batching_config(config.read_text()))
        for model_py in target.glob("[0-9]*/model.py"):
            model_py.write_bytes(runner)
    return destination


# ---------------------------------------------------------------------------------------------
# The run.


@dataclass(frozen=True)
class BenchOptions:
    models: tuple[str, ...] = MODELS
    concurrency: tuple[int, ...] = CONCURRENCY
    variants: tuple[str, ...] = ("a", "b", "c", "d", "e")
    replica_models: tuple[str, ...] = (CLASSIFIER,)  # variant e: where one gateway process is the bottleneck
    seconds: dict[str, float] = field(default_factory=lambda: {CLASSIFIER: 5.0, SEGMENTER_3D: 8.0})
    max_requests: dict[str, int] = field(default_factory=lambda: {CLASSIFIER: 1000, SEGMENTER_3D: 240})
    warmup_seconds: float = 1.0  # before every measurement: at least one request per client
    repository: Path = PROJECT_ROOT / "model_repository"
    work_dir: Path | None = None
    gateway_env: dict[str, str] = field(default_factory=dict)
    gateway_workers: int = 1
    wait_quiet_s: float = 0.0
    results_dir: Path = RESULTS_DIR
    markdown: Path | None = MARKDOWN
    log: Callable[[str], None] = print


@dataclass
class Cell:
    model: str
    variant: str
    concurrency: int
    load: dict[str, Any]
    stages: dict[str, Any]


def _check_answer(model: str) -> Callable[[bytes], bool]:
    key = b'"top_label"' if model == CLASSIFIER else b'"nodule"'
    return lambda body: key in body


def machine_description() -> dict[str, Any]:
    import importlib.metadata as md

    def version(package: str) -> str | None:
        try:
            return md.version(package)
        except md.PackageNotFoundError:
            return None

    cpu = "unknown"
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    memory_gib = None
    try:
        kib = next(int(l.split()[1]) for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal"))
        memory_gib = round(kib / 2**20, 1)
    except (OSError, StopIteration):
        pass
    return {
        "cpu_model": cpu,
        "logical_cpus": os.cpu_count(),
        "memory_gib": memory_gib,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "versions": {
            p: version(p)
            for p in ("torch", "monai", "onnxruntime", "nvidia-pytriton", "tritonclient", "fastapi", "uvicorn", "numpy", "pydicom", "aiohttp")
        },
    }


def _export_digest(model_dir: Path) -> str | None:
    """The export's source digest (spec + weights), so a result names the exact model it ran."""
    try:
        return json.loads((model_dir / "export_report.json").read_text())["source_digest"]
    except (OSError, ValueError, KeyError):
        return None


def _model_dirs(repository: Path, models: Sequence[str]) -> dict[str, list[str]]:
    missing = [m for m in models if not (repository / m / "config.pbtxt").exists()]
    if missing:
        raise FileNotFoundError(f"{', '.join(missing)} not in {repository}; run `make model-repository` first")
    return {m: [name for name in model_names(m) if (repository / name / "config.pbtxt").exists()] for m in models}


class Stack:
    """Every server of the run, started once and stopped together."""

    def __init__(self, options: BenchOptions, work: Path) -> None:
        self.options, self.work = options, work
        self.baselines: dict[str, UvicornServer] = {}
        self.tritons: dict[str, TritonServer] = {}
        self.gateways: dict[str, list[UvicornServer]] = {}
        self.triton_version = ""

    def start(self, model_dirs: dict[str, list[str]]) -> None:
        log, options = self.options.log, self.options
        self.work.mkdir(parents=True, exist_ok=True)
        if "a" in options.variants:
            for model in options.models:
                log(f"starting the baseline for {model}")
                env = _server_env(MEDSERVE_BASELINE_MODEL=model)
                self.baselines[model] = UvicornServer("benchmarks.baseline:create_app", self.work / f"baseline-{model}.log", env)
        deployments = []
        if "b" in options.variants:
            deployments.append(("nobatch", [m for m in options.models], False))
        if {"c", "d", "e"} & set(options.variants):
            deployments.append(("batch", [d for m in options.models for d in model_dirs[m]], True))
        for key, names, batching in deployments:
            repository = bench_repository(options.repository, self.work / f"repository-{key}", names, dynamic_batching=batching)
            log(f"starting tritonserver ({key}: {', '.join(names)})")
            triton = TritonServer(repository, self.work / f"triton-{key}", ports=TritonPorts.free(), poll_seconds=0)
            self.tritons[key] = triton.start(ready_timeout_s=300)
            env = _server_env(MEDSERVE_TRITON_GRPC_URL=triton.grpc_url, **options.gateway_env)
            self.gateways[key] = [UvicornServer(GATEWAY_APP, self.work / f"gateway-{key}.log", env, options.gateway_workers)]
            if key == "batch" and "e" in options.variants:
                self.gateways["replicas"] = [
                    UvicornServer(GATEWAY_APP, self.work / f"gateway-replica-{k}.log", env, options.gateway_workers) for k in (1, 2)
                ]
        for server in [*self.baselines.values(), *(g for group in self.gateways.values() for g in group)]:
            server.wait_ready()
        for group in self.gateways.values():
            for gateway in group:
                gateway.wait_ready("/readyz", timeout_s=60)
        if self.tritons:
            self.triton_version = json.loads(_get(next(iter(self.tritons.values())).http_url + "/v2")).get("version", "")

    def _deployment(self, variant: str) -> tuple[list[UvicornServer], TritonServer]:
        triton = self.tritons["nobatch" if variant == "b" else "batch"]
        return self.gateways["replicas" if variant == "e" else "nobatch" if variant == "b" else "batch"], triton

    def endpoint(self, variant: str, model: str) -> tuple[list[str], list[str], TritonServer | None, str]:
        """(predict URLs, gateway metrics URLs, Triton, Triton model name) of a variant."""
        if variant == "a":
            return [f"{self.baselines[model].url}/v1/models/{model}/predict"], [], None, model
        gateways, triton = self._deployment(variant)
        name = model_name(model, Precision.INT8 if variant in ("d", "e") else Precision.FP32)
        return [f"{g.url}/v1/models/{name}/predict" for g in gateways], [f"{g.url}/metrics" for g in gateways], triton, name

    def process_groups(self, variant: str, model: str) -> dict[str, list[int]]:
        """Process groups (= the server's pid: each starts its own session) serving a variant."""
        if variant == "a":
            return {"baseline": [self.baselines[model].pid()]}
        gateways, triton = self._deployment(variant)
        assert triton._process is not None
        return {"gateway": [g.pid() for g in gateways], "triton": [triton._process.pid]}

    def stop(self) -> None:
        for server in [*(g for group in self.gateways.values() for g in group), *self.baselines.values()]:
            try:
                server.stop()
            except Exception as exc:  # keep stopping the others
                self.options.log(f"stopping {server.url}: {exc}")
        for triton in self.tritons.values():
            triton.stop()


def _snapshot(metrics_urls: list[str], triton: TritonServer | None, model: str, served_name: str):
    gateway: dict[str, tuple[float, float]] | None = None
    for url in metrics_urls:  # replicas: their counters add up
        gateway = gateway or {}
        for key, (seconds, count) in gateway_stage_totals(_get(url).decode(), served_name).items():
            total = gateway.get(key, (0.0, 0.0))
            gateway[key] = (total[0] + seconds, total[1] + count)
    stats = triton_model_totals(json.loads(_get(f"{triton.http_url}/v2/models/{served_name}/stats"))) if triton else None
    return gateway, stats


def _cpu_counters(groups: dict[str, list[int]]) -> dict[str, float]:
    times = os.times()
    return {
        "client": times.user + times.system,
        **{name: sum(group_cpu_seconds(pgid) for pgid in pgids) for name, pgids in groups.items()},
        "machine": machine_busy_seconds(),
    }


def cpu_per_request(before: dict[str, float], after: dict[str, float], requests: int) -> dict[str, float]:
    """CPU milliseconds per answered request of each process group, the load generator
    (``client``), and the rest of the machine (``other``: anything not ours)."""
    delta = {key: after[key] - before[key] for key in after}
    delta["other"] = delta["machine"] - sum(v for k, v in delta.items() if k != "machine")
    return {key: round(value / max(requests, 1) * 1000, 3) for key, value in delta.items()}


def measure_cell(stack: Stack, model: str, variant: str, concurrency: int, payloads: Sequence[Payload]) -> Cell:
    options = stack.options
    url, metrics_url, triton, served = stack.endpoint(variant, model)
    groups = stack.process_groups(variant, model)
    check = _check_answer(model)
    warmup = asyncio.run(closed_loop(url, payloads, concurrency, concurrency, options.warmup_seconds, check))
    if warmup.errors:
        raise RuntimeError(f"{model} variant {variant}: warm-up failed: {warmup.errors}")
    before = _snapshot(metrics_url, triton, model, served)
    cpu_before = _cpu_counters(groups)
    load = asyncio.run(closed_loop(url, payloads, concurrency, options.max_requests[model], options.seconds[model], check))
    cpu_after = _cpu_counters(groups)
    after = _snapshot(metrics_url, triton, model, served)
    stages = stage_breakdown(before[0], after[0], before[1], after[1])
    stages["cpu_ms_per_request"] = cpu_per_request(cpu_before, cpu_after, load.requests)
    return Cell(model, variant, concurrency, load.summary(), stages)


def _other_share(cells: list[Cell]) -> float | None:
    """Mean number of CPUs that processes other than ours used during the measurements."""
    seconds = sum(c.stages.get("cpu_ms_per_request", {}).get("other", 0.0) * c.load["requests"] / 1000 for c in cells)
    wall = sum(c.load["window_s"] + c.load.get("drain_s", 0.0) for c in cells)
    return round(seconds / wall, 3) if wall > 0 else None


def evaluate_targets(cells: list[Cell]) -> list[dict[str, Any]]:
    """The issue's targets as measured ratios (met: True/False, or None when not measured)."""
    index = {(c.model, c.variant, c.concurrency): c for c in cells}
    targets: list[dict[str, Any]] = []
    for model in MODELS:
        base = index.get((model, "a", 16))
        for variant, factor in (("c", 1.5), ("d", 4.0)):
            cell = index.get((model, variant, 16))
            if base is None or cell is None or not base.load["throughput_rps"]:
                continue
            ratio = cell.load["throughput_rps"] / base.load["throughput_rps"]
            p99_ok = cell.load["p99_ms"] is not None and base.load["p99_ms"] is not None and cell.load["p99_ms"] <= base.load["p99_ms"]
            targets.append({
                "target": f"{model}: ({variant}) throughput ≥ {factor:g}× (a) at concurrency 16",
                "measured": f"{ratio:.2f}×", "value": round(ratio, 3), "met": ratio >= factor,
            })
            targets.append({
                "target": f"{model}: ({variant}) p99 ≤ (a) p99 at concurrency 16",
                "measured": f"{cell.load['p99_ms']:.1f} ms vs {base.load['p99_ms']:.1f} ms",
                "value": round(cell.load["p99_ms"] / base.load["p99_ms"], 3), "met": p99_ok,
            })
    for variant in ("c", "d"):
        cell = index.get((CLASSIFIER, variant, 1))
        if cell is not None and cell.stages.get("triton", {}).get("compute_infer_ms") and cell.load["p50_ms"]:
            compute = cell.stages["triton"]["compute_infer_ms"]
            share = 1 - compute / cell.load["p50_ms"]
            targets.append({
                "target": f"{CLASSIFIER} ({variant}) at concurrency 1: time outside Triton compute ≤ 20% of p50",
                "measured": f"{share:.0%} (p50 {cell.load['p50_ms']:.2f} ms, compute_infer {compute:.2f} ms)",
                "value": round(share, 3), "met": share <= 0.20,
            })
    for variant in ("c", "d"):
        cell = index.get((SEGMENTER_3D, variant, 1))
        if cell is not None and cell.stages.get("triton", {}).get("compute_infer_ms") and cell.load["p50_ms"]:
            compute = cell.stages["triton"]["compute_infer_ms"] * cell.stages["triton"]["requests"] / max(cell.load["requests"], 1)
            ratio = cell.load["p50_ms"] / compute
            targets.append({
                "target": f"{SEGMENTER_3D} ({variant}) at concurrency 1: end-to-end p50 ≤ 1.5× Triton compute",
                "measured": f"{ratio:.2f}× (p50 {cell.load['p50_ms']:.1f} ms, compute_infer {compute:.1f} ms per request)",
                "value": round(ratio, 3), "met": ratio <= 1.5,
            })
    return targets


def run_bench(options: BenchOptions) -> dict[str, Any]:
    log = options.log
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    work = options.work_dir or Path(tempfile.mkdtemp(prefix="medserve-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    wait_until_quiet(options.wait_quiet_s, log=log)
    machine = machine_description()
    model_dirs = _model_dirs(options.repository, options.models)
    payloads: dict[str, list[Payload]] = {}
    if CLASSIFIER in options.models:
        payloads[CLASSIFIER] = classifier_payloads()
    if SEGMENTER_3D in options.models:
        payloads[SEGMENTER_3D] = series_payloads(work / "inputs")
    stack = Stack(options, work)
    cells: list[Cell] = []
    started = time.perf_counter()
    try:
        stack.start(model_dirs)
        log(f"servers ready after {time.perf_counter() - started:.0f}s (work dir {work})")
        for model in options.models:
            variants = [
                v for v in options.variants
                if (v not in ("d", "e") or len(model_dirs[model]) > 1) and (v != "e" or model in options.replica_models)
            ]
            for concurrency in options.concurrency:
                for variant in variants:
                    cell = measure_cell(stack, model, variant, concurrency, payloads[model])
                    cells.append(cell)
                    load = cell.load
                    log(
                        f"{model:<24} {variant} c={concurrency:<3} {load['throughput_rps']:8.1f} req/s  p50 {load['p50_ms']:8.1f}  "
                        f"p95 {load['p95_ms']:8.1f}  p99 {load['p99_ms']:8.1f} ms  n={load['requests']}"
                        + (f"  errors {load['errors']}" if load["errors"] else "")
                    )
    finally:
        stack.stop()
    machine["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    machine["other_cpu_share"] = _other_share(cells)
    machine["versions"]["tritonserver"] = stack.triton_version
    report = {
        "benchmark": "medserve vs the naive baseline: closed-loop HTTP load on 127.0.0.1",
        "timestamp_utc": stamp,
        "wall_s": round(time.perf_counter() - started, 1),
        "machine": machine,
        "variants": {v.key: {"label": v.label, "description": v.description} for v in VARIANTS},
        "inputs": {model: [p.name for p in items] for model, items in payloads.items()},
        "models": {name: _export_digest(options.repository / name) for names in model_dirs.values() for name in names},
        "settings": {
            "concurrency": list(options.concurrency),
            "seconds_per_measurement": {m: options.seconds[m] for m in options.models},
            "max_requests": {m: options.max_requests[m] for m in options.models},
            "warmup": f"one request per client (and at most {options.warmup_seconds:g} s) before each measurement",
            "gateway_env": options.gateway_env,
            "gateway_workers": options.gateway_workers,
            "baseline_route": "inline" if os.environ.get("MEDSERVE_BASELINE_ROUTE") == "inline" else "threadpool",
        },
        "cells": [asdict(c) for c in cells],
        "targets": evaluate_targets(cells),
    }
    options.results_dir.mkdir(parents=True, exist_ok=True)
    out = options.results_dir / f"{stamp}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    log(f"wrote {out}")
    if options.markdown is not None:
        write_markdown(options.markdown, render_markdown(report))
        log(f"wrote {options.markdown}")
    if options.work_dir is None:
        shutil.rmtree(work, ignore_errors=True)
    return report


# ---------------------------------------------------------------------------------------------
# The report.


def _fmt(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def render_markdown(report: dict[str, Any]) -> str:
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
    lines += ["### Targets", "", "| target | measured | met |", "|---|---|---|"]
    for target in report["targets"]:
        lines.append(f"| {target['target']} | {target['measured']} | {'yes' if target['met'] else '**no**'} |")
    return "\n".join(lines) + "\n"


def write_markdown(path: Path, generated: str) -> None:
    """Replace the generated block of ``path`` (between the bench markers), keeping the
    hand-written text around it; a missing file or block is created."""
    text = path.read_text() if path.exists() else ""
    block = f"{BEGIN}\n{generated}{END}\n"
    if BEGIN in text and END in text:
        head, _, rest = text.partition(BEGIN)
        _, _, tail = rest.partition(END)
        text = head + block + tail.lstrip("\n")
    else:
        text = (text.rstrip() + "\n\n" if text else "# Benchmarks\n\n") + block
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
