"""Several gateway worker processes on one port: every worker serves, /metrics adds them up."""

from __future__ import annotations

import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

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
