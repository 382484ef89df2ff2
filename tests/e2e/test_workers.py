"""Several gateway worker processes on one port: every worker serves, /metrics adds them up."""

from __future__ import annotations

import os
import socket
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

from prometheus_client.parser import text_string_to_metric_families

MODEL = "ct_nodule_classifier"


def _predict(url: str, body: bytes) -> int:
    request = urllib.request.Request(f"{url}/v1/models/{MODEL}/predict", data=body, headers={"Content-Type": "application/dicom"})
    with urllib.request.urlopen(request, timeout=60) as response:  # a new connection each time
        return response.status


def _samples(url: str) -> list:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def test_two_workers_share_the_port_and_their_metrics_add_up(start_gateway, real_ct_files) -> None:
    gateway = start_gateway(workers="2", drift_min_samples="2", drift_window_size="10")
    body = real_ct_files["CT_small"].read_bytes()
    answered = 0
    with ThreadPoolExecutor(4) as pool:
        for _ in range(3):  # spread over > 2 s: each worker writes its drift scores at most once a second
            answered += sum(status == 200 for status in pool.map(lambda _: _predict(gateway.url, body), range(16)))
            time.sleep(1.2)
    assert answered == 48

    pids = {path.stem.rsplit("_", 1)[-1] for path in gateway.metrics_dir.glob("histogram_*.db")}
    assert len(pids) == 2, f"both workers served requests: {sorted(pids)}"
    for _ in range(4):  # whichever worker answers the scrape, it reports both workers' requests
        samples = _samples(gateway.url)
        counts = [
            s.value for s in samples
            if s.name == "medserve_request_duration_seconds_count" and s.labels.get("route") == "/v1/models/{name}/predict"
        ]
        assert sum(counts) == 48
    scores = {(s.labels["feature"], s.labels["stat"]): s.value for s in samples if s.name == "medserve_drift_score" and s.labels["model"] == MODEL}
    assert 0.0 <= scores[("image.intensity", "psi")] < 10.0
    window = [s.value for s in samples if s.name == "medserve_drift_window_samples" and s.labels["model"] == MODEL]
    assert window and 2 <= sum(window) <= 20  # two windows of at most 10


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return found


def _established_inodes(port: int) -> set[str]:
    """Socket inodes of ESTABLISHED TCP connections whose local port is ``port``."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def test_connections_opened_at_once_are_spread_over_the_workers(start_gateway) -> None:
    """Each worker listens on its own SO_REUSEPORT socket, so the kernel spreads new
    connections over the workers; with one shared socket, 16 connections opened at once all
    went to one worker. 32 keep-alive connections, each answered once: both workers hold some
    (binomially ~16 each; fewer than 4 on one side has a chance of about 1e-6)."""
    gateway = start_gateway(workers="2")
    host, port = urlsplit(gateway.url).hostname, urlsplit(gateway.url).port
    connections = [socket.create_connection((host, port), timeout=30) for _ in range(32)]
    try:
        for connection in connections:
            connection.sendall(f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        for connection in connections:
            assert connection.recv(65536).startswith(b"HTTP/1.1 200")
        established = _established_inodes(port)
        held = {pid: len(_socket_inodes(pid) & established) for pid in _children(gateway.pid)}
        held = {pid: count for pid, count in held.items() if count}
        assert sum(held.values()) == 32
        assert len(held) == 2 and min(held.values()) >= 4, held
    finally:
        for connection in connections:
            connection.close()
