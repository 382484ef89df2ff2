"""The dashboard and the alerts, proven against a real Prometheus scraping a real gateway, a real
DIMSE receiver and a real Triton on loopback (Debian's ``prometheus`` 2.42, the same config files
as production)."""

from __future__ import annotations

import io
import json
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest
import yaml
from pynetdicom import _config
from pynetdicom.sop_class import CTImageStorage

from devtools.dicomgen import ct_dataset
from devtools.dimse_peer import send_file
from devtools.phantoms import chest_slice
from dimse.config import DimseSettings
from dimse.metrics import serve_metrics
from dimse.server import DimseServer

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_CONFIG = ROOT / "docker" / "prometheus" / "prometheus.yml"
ALERTS = ROOT / "docker" / "prometheus" / "alerts.yml"
CLASSIFIER = "ct_nodule_classifier"
SEGMENTER = "ct_nodule_segmenter"
DRIFT_ALERTS = {"MedserveInputDriftPSI", "MedserveInputDriftKS"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _http(url: str, body: bytes | None = None, headers: dict | None = None, timeout: float = 30) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers=headers or {}, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:  # not listening (yet)
        return 0, b""


def _slice(rng: np.random.Generator, shift_hu: float = 0.0, nodules: int = 0) -> bytes:
    phantom = chest_slice(rng, size=256, nodules=nodules)
    buffer = io.BytesIO()
    ct_dataset(phantom.hu + shift_hu, pixel_spacing_mm=phantom.spacing_mm).save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _blank_slice() -> bytes:
    """A CT slice of air only: no spread, no foreground."""
    buffer = io.BytesIO()
    ct_dataset(np.full((256, 256), -1000.0), pixel_spacing_mm=(1.4, 1.4)).save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


class Receiver:
    """The DIMSE receiver in this process on free loopback ports, its metrics served as
    ``python -m dimse`` serves them, over the serving gateway's work directory (one spool and one
    SQLite job store, as ``make run`` and docker-compose share them)."""

    def __init__(self, work_dir: Path) -> None:
        self._saved = (_config.STORE_RECV_CHUNKED_DATASET, tempfile.tempdir)  # process globals the receiver sets
        settings = DimseSettings(
            work_dir=work_dir, dimse_port=0, dimse_host="127.0.0.1", dimse_series_silence_s=1.0, dimse_assembly_poll_s=0.2
        )
        self.server = DimseServer(settings).start()
        self.endpoint = serve_metrics(self.server.metrics, "127.0.0.1", 0, self.server.healthy)
        self.metrics = f"127.0.0.1:{self.endpoint.server_address[1]}"

    def send(self, path: Path) -> int:
        """C-STORE the file's bytes as they are; the status."""
        return send_file(self.server.port, path, CTImageStorage)

    def stop(self) -> None:
        self.endpoint.shutdown()
        self.server.stop()
        _config.STORE_RECV_CHUNKED_DATASET, tempfile.tempdir = self._saved


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    started = Receiver(tmp_path / "node")
    try:
        yield started
    finally:
        started.stop()


class Prometheus:
    def __init__(self, work: Path, gateways: list[str], triton_metrics: str, receivers: list[str]) -> None:
        """Production's prometheus.yml with loopback targets and 1 s scrape/evaluation."""
        config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
        config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
        config["rule_files"] = [str(ALERTS)]
        targets = {"medserve-gateway": gateways, "triton": [triton_metrics], "medserve-dimse": receivers}
        for job in config["scrape_configs"]:
            if job["job_name"] in targets:
                job["static_configs"] = [{"targets": targets[job["job_name"]]}]
        port = _free_port()
        for job in config["scrape_configs"]:
            if job["job_name"] == "prometheus":
                job["static_configs"] = [{"targets": [f"127.0.0.1:{port}"]}]
        (work / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.url = f"http://127.0.0.1:{port}"
        binary = shutil.which("prometheus")
        assert binary, "prometheus is required: apt-get install -y prometheus (make install-system-tools)"
        self.log = open(work / "prometheus.log", "wb")
        self.process = subprocess.Popen(
            [binary, f"--config.file={work / 'prometheus.yml'}", f"--storage.tsdb.path={work / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while _http(f"{self.url}/-/ready")[0] != 200:
            assert time.monotonic() < deadline and self.process.poll() is None, (work / "prometheus.log").read_text()
            time.sleep(0.2)

    def api(self, path: str, **params: str) -> dict:
        status, body = _http(f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}")
        answer = json.loads(body)
        assert status == 200 and answer["status"] == "success", answer
        return answer["data"]

    def query(self, expr: str) -> list:
        return self.api("query", query=expr)["result"]

    def alert_states(self) -> dict[str, set[str]]:
        states: dict[str, set[str]] = {}
        for alert in self.api("alerts")["alerts"]:
            states.setdefault(alert["labels"]["alertname"], set()).add(alert["state"])
        return states

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=15)
        self.log.close()


def _underlying(expr: str) -> str:
    """An alert's expression without its threshold (``… > 0.25``) or absence clause, i.e. the
    series it watches: those must exist while the system is healthy, when the alert is empty."""
    expr = " ".join(expr.split())
    expr = re.split(r"\s+or\s+absent\(", expr)[0]
    comparison = re.compile(r"\s*(==|!=|>=|<=|>|<)\s*[-+0-9.e]+\s*$")
    while comparison.search(expr):
        expr = comparison.sub("", expr)
    return expr


def _wait_for(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_dashboard_and_alerts_against_a_real_prometheus(triton, start_gateway, receiver, dashboard_queries, alert_rules, tmp_path) -> None:
    # Gateway A serves, runs jobs and routes the series the receiver completes (one work
    # directory); a low in-flight cap makes bursts produce 429s, a short drift window makes drift
    # visible within the test. Gateway B's 1 ms Triton deadline answers 504s.
    # Its routes send each CT job's SEG to a PACS that is down: two attempts, then a dead letter.
    routes = tmp_path / "routes.yaml"
    routes.write_text(json.dumps({
        "destinations": {"pacs": {"kind": "dimse", "ae_title": "PACS", "host": "127.0.0.1", "port": _free_port(), "timeout_s": 2,
                                  "retry": {"max_attempts": 2, "backoff_s": 1}}},
        "routes": [{"name": "ct", "match": {"modality": ["CT"]}, "models": "auto", "send": [{"destination": "pacs", "outputs": ["seg"]}]}],
    }))
    serving = start_gateway(max_in_flight="2", drift_window_size="30", drift_min_samples="10", work_dir=str(tmp_path / "node"), routing_poll_s="0.2",
                            routes=str(routes), delivery_poll_s="0.2")
    timing_out = start_gateway(triton_timeout_s="0.001", work_dir=str(tmp_path / "timing-out"))
    prometheus = Prometheus(
        tmp_path, [f"127.0.0.1:{serving.port}", f"127.0.0.1:{timing_out.port}"], f"127.0.0.1:{triton.ports.metrics}", [receiver.metrics]
    )
    try:
        _wait_for(lambda: len([t for t in prometheus.api("targets")["activeTargets"] if t["health"] == "up"]) == 5, 30, "targets up")
        up = {(t["labels"]["job"], t["health"]) for t in prometheus.api("targets")["activeTargets"]}
        assert up == {("medserve-gateway", "up"), ("triton", "up"), ("prometheus", "up"), ("medserve-dimse", "up")}

        rng = np.random.default_rng(0)
        dicom = {"Content-Type": "application/dicom"}
        in_distribution = [_slice(rng, nodules=i % 2) for i in range(30)]
        for body in in_distribution:
            assert _http(f"{serving.url}/v1/models/{CLASSIFIER}/predict", body, dicom)[0] == 200
        for body in in_distribution[:4]:
            assert _http(f"{serving.url}/v1/models/{SEGMENTER}/predict", body, dicom)[0] == 200
            assert _http(f"{timing_out.url}/v1/models/{CLASSIFIER}/predict", body, dicom)[0] == 504
        assert _http(f"{serving.url}/v1/models/{CLASSIFIER}/predict", b"not dicom", dicom)[0] == 400
        # a blank slice is outside the demo models' input quality gate (action warn): counted before
        # the model runs, here on gateway B, so that gateway A's drift window stays in distribution
        assert _http(f"{timing_out.url}/v1/models/{CLASSIFIER}/predict", _blank_slice(), dicom)[0] == 504
        assert _http(f"{serving.url}/v1/models/no_such_model/predict", in_distribution[0], dicom)[0] == 404

        statuses: list[int] = []
        burst = [threading.Thread(target=lambda: statuses.append(_http(f"{serving.url}/v1/models/{SEGMENTER}/predict", in_distribution[0], dicom)[0])) for _ in range(12)]
        for thread in burst:
            thread.start()
        for thread in burst:
            thread.join()
        assert 429 in statuses and 200 in statuses

        # The DICOM node: a PACS pushes a one-slice CT series (routed to the CT models as jobs
        # once complete) and a truncated instance (refused); a job whose input is not DICOM fails.
        sent = tmp_path / "slice.dcm"
        sent.write_bytes(in_distribution[0])
        assert receiver.send(sent) == 0x0000
        truncated = tmp_path / "truncated.dcm"
        truncated.write_bytes(in_distribution[1][:-4000])
        assert receiver.send(truncated) == 0xC001
        assert _http(f"{serving.url}/v1/models/{CLASSIFIER}/jobs", b"not dicom", dicom)[0] == 202

        _wait_for(lambda: prometheus.query('medserve_drift_score{stat="psi"}') and prometheus.query("medserve_rejections_total")
                  and prometheus.query("medserve_input_quality_total") and prometheus.query("medserve_dimse_instances_refused_total")
                  and prometheus.query('medserve_job_stage_seconds_count{stage="assembly"} > 0')
                  and prometheus.query('medserve_job_stage_seconds_count{stage="export"} > 0')
                  and prometheus.query('medserve_job_outcomes_total{state="failed"} > 0')
                  and prometheus.query('medserve_delivery_attempts_total{outcome="retry"} > 0')
                  and prometheus.query('medserve_deliveries{state="failed_export"} > 0'), 60, "the traffic to be scraped")
        time.sleep(3)  # a few more scrapes, so that rate() over the dashboards' 1m windows has points

        problems = []
        for query in dashboard_queries:
            if not prometheus.query(query.expr):
                problems.append(f"{query.source}: no series for {query.expr}")
        for rule in alert_rules:
            prometheus.query(" ".join(rule["expr"].split()))  # the full expression evaluates
            if not prometheus.query(_underlying(rule["expr"])):
                problems.append(f"alert {rule['alert']}: no series for {_underlying(rule['expr'])}")
        assert problems == []

        calm = prometheus.alert_states()
        assert not (DRIFT_ALERTS & set(calm)), f"drift alerts active on in-distribution traffic: {calm}"

        for _ in range(30):  # a scanner that went +300 HU off
            assert _http(f"{serving.url}/v1/models/{CLASSIFIER}/predict", _slice(rng, shift_hu=300.0), dicom)[0] == 200
        states = _wait_for(lambda: {a: s for a, s in prometheus.alert_states().items() if a in DRIFT_ALERTS}, 30, "a drift alert")
        assert all(s & {"pending", "firing"} for s in states.values())
        assert "MedserveInputDriftPSI" in states
    finally:
        prometheus.stop()
