"""Benchmark: the gateway's CPU per 512 × 512 CT classification request, and where it goes.

A real tritonserver serving the demo classifier ``ct_nodule_classifier`` and a real gateway
process (``python -m gateway.server``, one worker, as production starts it). Keep-alive HTTP
clients send pydicom-data's 512 × 512 CT slice ``693_UNCI.dcm`` as ``application/dicom``,
``--requests`` requests sequentially and as many at concurrency 4; the gateway's CPU is its
process group's user + system time from ``/proc`` read just before and after (the decoder
processes included), divided by the answered requests. Issue 17's target: ≤ 3 ms.

Measured separately, in the same run:

* **HTTP/ASGI share** — ``GET /healthz``: uvicorn (httptools, uvloop), the request-context
  middleware (request id, auth, access log, latency metric), Starlette routing, FastAPI's
  dependency solving and response model, JSON answer — everything a request costs before
  any DICOM or Triton work. ``POST /healthz`` with the same DICOM body (answered 405 without
  the app reading it; uvicorn still parses all 525 kB) adds the cost of the body on the wire.
* **gRPC share** — an in-process harness: the gateway's own :class:`gateway.triton.TritonClient`
  calling the same model with a tensor of the model's input shape, sequentially, CPU by
  ``time.process_time`` of that process (grpc's threads included). Run in a subprocess of
  the same tree as the gateway it is compared with, which also times, in process, opening
  the upload, preprocessing it and the input statistics of the quality gate within that:
  the largest parts of the rest.
* **idle** — the gateway's CPU per second without requests (its pollers), which the
  per-request figures include for the seconds they ran.
* **rest** — predict minus the ASGI (with body) and gRPC shares: upload receive, DICOM read, decode, preprocess,
  postprocess, drift, metrics, JSON answer.

``--against DIR`` starts a second gateway from another tree (e.g. ``git archive HEAD~1 |
tar -x -C DIR``) on the same Triton; the two take turns per round (ABBA), so that a noisy
neighbour falls on both alike, and the table gives both and the median of the per-round ratios.
``--profile`` records the gateway with py-spy (``py-spy record --pid``) during the sequential
predict run of the first round and writes the flame graph next to the JSON.

    .venv/bin/python -m benchmarks.gateway_cpu [--requests 200] [--rounds 4] [--only KIND ...] [--against DIR] [--profile]

Writes ``benchmarks/results/gateway-cpu-<UTC>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
MODEL = "ct_nodule_classifier"
INPUT_SHAPE = (1, 1, 128, 128)  # the model's input, batch of one (its config.pbtxt)
SLICE = "693_UNCI.dcm"
RESULTS = PROJECT_ROOT / "benchmarks" / "results"


async def drive(method: str, url: str, body: bytes | None, requests: int, concurrency: int, expect: int) -> int:
    """``concurrency`` keep-alive clients sending ``requests`` requests in all; returns how
    many were answered with ``expect`` (any other answer stops the run: a wrong answer is
    not a measurement)."""
    import aiohttp

    headers = {"Content-Type": "application/dicom"} if body is not None else {}
    sent = answered = 0

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal sent, answered
        while sent < requests:
            sent += 1
            async with session.request(method, url, data=body, headers=headers) as response:
                await response.read()
                if response.status != expect:
                    raise RuntimeError(f"{method} {url}: {response.status}, expected {expect}")
                answered += 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
    return answered


def cpu_ms_per_request(pgid: int, method: str, url: str, body: bytes | None, requests: int, concurrency: int, expect: int) -> float:
    """The CPU milliseconds per answered request of process group ``pgid`` over one run."""
    from benchmarks.serving.machine import group_cpu_seconds

    asyncio.run(drive(method, url, body, max(concurrency, 8), concurrency, expect))  # warm connections and caches
    before = group_cpu_seconds(pgid)
    answered = asyncio.run(drive(method, url, body, requests, concurrency, expect))
    return (group_cpu_seconds(pgid) - before) / answered * 1000


async def _in_process(url: str, body: bytes, requests: int) -> dict[str, float]:
    """CPU ms per call, in this process, of the gateway's own steps of a 2D classification
    (the tree on ``sys.path``): ``TritonClient.infer`` with a tensor of the model's input
    shape (the gRPC share), opening the upload, preprocessing it and, within that, the input
    statistics of the model's quality gate."""
    import numpy as np

    from contract import ModelCard
    from gateway.inputs import open_parts
    from gateway.triton import TritonClient
    from gateway.uploads import DicomPart
    from preprocessing import preprocess_instance
    from preprocessing.decode import decode_frame
    from preprocessing.pixels import to_modality_values
    from preprocessing.quality import input_statistics
    import pydicom.config

    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE

    def cpu_ms(step: Any) -> float:
        for _ in range(5):
            step()
        started = time.process_time()
        for _ in range(requests):
            step()
        return (time.process_time() - started) / requests * 1000

    client = TritonClient(url, timeout_s=30.0, probe_timeout_s=5.0)
    image = np.random.default_rng(0).random(INPUT_SHAPE, dtype=np.float32)
    try:
        card = ModelCard.from_triton_config(await client.model_config(MODEL))
        for _ in range(10):
            await client.infer(MODEL, {"image": image}, ["probabilities"])
        started = time.process_time()
        for k in range(requests):
            await client.infer(MODEL, {"image": image}, ["probabilities"], request_id=str(k))
        grpc_ms = (time.process_time() - started) / requests * 1000
    finally:
        await client.close()
    instance = open_parts([DicomPart(body)])[0]
    values = to_modality_values(instance.header, decode_frame(instance, 0))
    return {
        "grpc_infer": grpc_ms,
        "open": cpu_ms(lambda: open_parts([DicomPart(body)])),
        "preprocess": cpu_ms(lambda: preprocess_instance(instance, card.preprocessing)),
        "input_statistics": cpu_ms(lambda: input_statistics(values)),
    }


def in_process_cpu_ms(source: Path, url: str, requests: int) -> dict[str, float]:
    """:func:`_in_process` in a fresh interpreter with ``source``'s gateway first on the path."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(source), str(PROJECT_ROOT)])}
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--in-process", url, str(requests)],
        env=env, cwd=source, check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def idle_cpu_ms_per_s(pgid: int, seconds: float) -> float:
    """CPU milliseconds per second process group ``pgid`` spends with no request to serve (the
    job, routing and delivery pollers, gRPC's and the event loop's timers)."""
    from benchmarks.serving.machine import group_cpu_seconds

    before = group_cpu_seconds(pgid)
    time.sleep(seconds)
    return (group_cpu_seconds(pgid) - before) / seconds * 1000


def figures(gateway: Any, source: Path, triton_url: str, body: bytes, requests: int, idle_s: float) -> dict[str, Any]:
    """Each figure's measurement of one gateway, to be called in turns: CPU ms per request
    (idle: CPU ms per s)."""
    pid, url = gateway.pid, gateway.url
    predict = f"{url}/v1/models/{MODEL}/predict"
    return {
        "predict_c1": lambda: cpu_ms_per_request(pid, "POST", predict, body, requests, 1, 200),
        "predict_c4": lambda: cpu_ms_per_request(pid, "POST", predict, body, requests, 4, 200),
        "asgi_get_healthz": lambda: cpu_ms_per_request(pid, "GET", f"{url}/healthz", None, requests, 1, 200),
        "asgi_post_body_405": lambda: cpu_ms_per_request(pid, "POST", f"{url}/healthz", body, requests, 1, 405),
        "in_process": lambda: in_process_cpu_ms(source, triton_url, requests),
        "idle_ms_per_s": lambda: idle_cpu_ms_per_s(pid, idle_s),
    }


def summarise(rounds: dict[str, list[float]]) -> dict[str, float]:
    """Medians over the rounds, and the rest: predict (sequential) minus the ASGI share with
    the body and the gRPC share."""
    medians = {key: round(statistics.median(values), 3) for key, values in rounds.items()}
    if {"predict_c1", "asgi_post_body_405", "grpc_infer"} <= set(medians):
        medians["rest"] = round(medians["predict_c1"] - medians["asgi_post_body_405"] - medians["grpc_infer"], 3)
    return medians


def paired_ratios(rounds: dict[str, dict[str, list[float]]]) -> dict[str, float]:
    """First tree / second tree: the median of the per-round ratios (each round measured the
    two back to back, so a noisy neighbour weighs on both alike)."""
    first, second = rounds.values()
    return {key: round(statistics.median(a / b for a, b in zip(first[key], second[key]) if b > 0), 3) for key in first}


ROWS = [
    ("predict_c1", "predict, sequential (total)"),
    ("predict_c4", "predict, concurrency 4"),
    ("asgi_get_healthz", "HTTP/ASGI share: GET /healthz"),
    ("asgi_post_body_405", "HTTP/ASGI share + 525 kB body (POST /healthz, 405)"),
    ("grpc_infer", "gRPC share: TritonClient.infer"),
    ("rest", "rest: DICOM, preprocess, postprocess, drift, metrics, JSON"),
    ("open", "  of which, in process: open the upload (header, pixels)"),
    ("preprocess", "  of which, in process: preprocess"),
    ("input_statistics", "    of which: input statistics (quality gate)"),
    ("idle_ms_per_s", "idle: CPU ms per second without requests"),
]


def table(results: dict[str, dict[str, float]], ratios: dict[str, float] | None) -> str:
    names = list(results)
    header = f"{'CPU ms per request':58s}" + "".join(f"{n:>12s}" for n in names) + (f"{'ratio':>8s}" if ratios else "")
    lines = [header]
    for key, label in ROWS:
        if key not in results[names[0]]:
            continue
        line = f"{label:58s}" + "".join(f"{results[n][key]:12.3f}" for n in names)
        if ratios and key in ratios:
            line += f"{ratios[key]:8.2f}"
        lines.append(line)
    if ratios:
        lines.append("ratio: the median over the rounds of this tree / the other, measured back to back")
    return "\n".join(lines)


def profile(gateway: Any, body: bytes, requests: int, destination: Path) -> Path | None:
    """A py-spy flame graph of ``gateway`` over ``requests`` sequential predicts (None when
    py-spy is missing or may not attach)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        return None
    recorder = subprocess.Popen(
        [spy, "record", "--pid", str(gateway.pid), "--rate", "500", "--subprocesses", "--format", "speedscope", "--output", str(destination), "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    time.sleep(1.0)
    asyncio.run(drive("POST", f"{gateway.url}/v1/models/{MODEL}/predict", body, requests, 1, 200))
    recorder.send_signal(2)  # SIGINT: py-spy writes what it recorded
    _, errors = recorder.communicate(timeout=60)
    if not destination.exists():
        print(f"py-spy recorded nothing: {errors.decode(errors='replace').strip()[-400:]}", file=sys.stderr)
        return None
    return destination


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="requests per measurement")
    parser.add_argument("--rounds", type=int, default=4, help="rounds per figure (gateways take turns ABBA); medians reported")
    parser.add_argument("--only", nargs="+", choices=["predict_c1", "predict_c4", "asgi_get_healthz", "asgi_post_body_405", "in_process", "idle_ms_per_s"], help="measure only these figures")
    parser.add_argument("--against", type=Path, help="another tree's gateway to compare with, on the same Triton")
    parser.add_argument("--idle-seconds", type=float, default=5.0, help="how long the idle CPU is measured per round")
    parser.add_argument("--repository", type=Path, default=PROJECT_ROOT / "model_repository")
    parser.add_argument("--profile", action="store_true", help="record a py-spy flame graph of this tree's gateway")
    parser.add_argument("--work", type=Path, help="work directory (default: a temporary one, removed)")
    args = parser.parse_args(argv)

    from devtools.processes import GatewayProcess
    from devtools.testdata import pydicom_test_file
    from devtools.tritonserver import TritonPorts, TritonServer

    from benchmarks.serving.repositories import bench_repository
    from benchmarks.serving.servers import uncapped_env

    body = pydicom_test_file(SLICE).read_bytes()
    work = args.work or Path(tempfile.mkdtemp(prefix="medserve-gateway-cpu-"))
    sources = {"this tree": PROJECT_ROOT}
    if args.against:
        sources["against"] = args.against.resolve()
    triton = TritonServer(bench_repository(args.repository, work / "repository", [MODEL]), work / "triton", ports=TritonPorts.free(), poll_seconds=0)
    gateways: dict[str, Any] = {}
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    RESULTS.mkdir(parents=True, exist_ok=True)
    try:
        print("starting tritonserver", flush=True)
        triton.start(ready_timeout_s=300)
        for name, source in sources.items():
            gateways[name] = GatewayProcess(triton.grpc_url, work, source=source, settings={"workers": "1"}, env=uncapped_env()).start()
        for gateway in gateways.values():
            gateway.wait_healthy(timeout_s=120)
            gateway.wait_serving(timeout_s=120)
        flame = profile(gateways["this tree"], body, args.requests, RESULTS / f"gateway-cpu-{stamp}.speedscope.json") if args.profile else None
        measurements = {name: figures(gateways[name], sources[name], triton.grpc_url, body, args.requests, args.idle_seconds) for name in sources}
        kinds = args.only or list(measurements["this tree"])
        rounds: dict[str, dict[str, list[float]]] = {name: {} for name in sources}
        for kind in kinds:
            for k in range(args.rounds):
                for name in list(sources) if k % 2 == 0 else list(reversed(sources)):
                    value = measurements[name][kind]()
                    for key, figure in (value.items() if isinstance(value, dict) else [(kind, value)]):
                        rounds[name].setdefault(key, []).append(figure)
            print(f"{kind} done", flush=True)
    finally:
        for gateway in gateways.values():
            gateway.stop()
        triton.stop()
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    results = {name: summarise(r) for name, r in rounds.items()}
    ratios = paired_ratios(rounds) if len(rounds) == 2 else None
    print(table(results, ratios))
    output = RESULTS / f"gateway-cpu-{stamp}.json"
    output.write_text(json.dumps({
        "benchmark": "gateway_cpu", "utc": stamp, "model": MODEL, "input": SLICE, "requests": args.requests,
        "rounds": rounds, "medians": results, "ratios": ratios, "sources": {n: str(s) for n, s in sources.items()},
        "flame_graph": str(flame) if flame else None, "unit": "CPU ms per request (gateway process group)",
    }, indent=2))
    print(f"wrote {output}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--in-process":
        from devtools.testdata import pydicom_test_file

        print(json.dumps(asyncio.run(_in_process(sys.argv[2], pydicom_test_file(SLICE).read_bytes(), int(sys.argv[3])))))
    else:
        main()
