"""``medserve run``: the whole stack on one machine (what ``make run`` does).

Builds the demo model repository if it is missing, starts the real tritonserver and the
gateway, waits for both, prints a working ``curl``, and on Ctrl-C (or SIGTERM) stops both.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from .tritonserver import TritonPorts, TritonServer

DEMO_MODEL = "ct_nodule_classifier"


def _wait_http_ok(url: str, timeout_s: float, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the gateway exited with {process.returncode} before it was ready")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{url} not ready after {timeout_s:.0f}s")


def write_demo_instance(path: Path) -> Path:
    """A phantom chest-CT slice with a nodule, for the printed curl example."""
    import numpy as np

    from .dicomgen import ct_dataset
    from .phantoms import chest_slice

    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        phantom = chest_slice(np.random.default_rng(7), size=512, nodules=1, field_of_view_mm=360.0)
        ct_dataset(phantom.hu, pixel_spacing_mm=phantom.spacing_mm).save_as(path, enforce_file_format=True)
    return path


def run(repository: Path, work_dir: Path, host: str, port: int, triton_ports: TritonPorts) -> int:
    from export.zoo.repository import ensure_demo_repository

    exported = ensure_demo_repository(repository)
    if exported:
        print(f"exported into {repository}: {', '.join(exported)}")
    demo = write_demo_instance(work_dir / "demo" / "chest_ct_nodule.dcm")

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    triton = TritonServer(repository, work_dir / "triton", ports=triton_ports)
    gateway: subprocess.Popen | None = None
    try:
        print(f"starting tritonserver (log: {triton.log_file}) ...", flush=True)
        triton.start()
        env = dict(os.environ, MEDSERVE_TRITON_GRPC_URL=triton.grpc_url, MEDSERVE_HOST=host, MEDSERVE_PORT=str(port))
        gateway = subprocess.Popen(
            [sys.executable, "-m", "gateway.server"],
            env=env,
            start_new_session=True,
        )
        _wait_http_ok(f"http://{host}:{port}/readyz", 60, gateway)
        url = f"http://{host}:{port}"
        print(
            "\nmedserve is ready.\n"
            f"  models:   curl -s {url}/v1/models\n"
            f"  predict:  curl -s -X POST -H 'Content-Type: application/dicom' --data-binary @{demo} {url}/v1/models/{DEMO_MODEL}/predict\n"
            f"  docs:     {url}/docs   metrics: {url}/metrics   Triton metrics: http://127.0.0.1:{triton_ports.metrics}/metrics\n"
            "Press Ctrl-C to stop.\n",
            flush=True,
        )
        while not stop.is_set():
            if gateway.poll() is not None:
                print(f"the gateway exited with {gateway.returncode}", file=sys.stderr)
                return 1
            if triton._process is None or triton._process.poll() is not None:
                print(f"tritonserver exited:\n{triton.log_tail()}", file=sys.stderr)
                return 1
            stop.wait(0.5)
        return 0
    finally:
        print("stopping ...", flush=True)
        if gateway is not None and gateway.poll() is None:
            os.killpg(gateway.pid, signal.SIGTERM)
            try:
                gateway.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(gateway.pid, signal.SIGKILL)
        triton.stop()
        print("stopped.", flush=True)
