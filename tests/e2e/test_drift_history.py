"""``GET /v1/models/{name}/drift`` of a gateway process as production runs it: the scores its
drift monitor computes, the same ``/metrics`` publishes, and their history of the last hour."""

from __future__ import annotations

import json
import urllib.request
from datetime import datetime, timedelta, timezone

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.test_drift import MODEL, _slices


def _get(url: str) -> tuple[int, dict | str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            body = answer.read().decode()
            return answer.status, json.loads(body) if answer.headers.get_content_type() == "application/json" else body
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _predict(url: str, body: bytes) -> int:
    request = urllib.request.Request(f"{url}/v1/models/{MODEL}/predict", data=body, headers={"Content-Type": "application/dicom"})
    with urllib.request.urlopen(request, timeout=60) as answer:
        return answer.status


def _published(url: str) -> dict[tuple[str, str], float]:
    """``medserve_drift_score`` of MODEL by (feature, stat)."""
    return {
        (sample.labels["feature"], sample.labels["stat"]): sample.value
        for family in text_string_to_metric_families(_get(f"{url}/metrics")[1])
        for sample in family.samples
        if sample.name == "medserve_drift_score" and sample.labels["model"] == MODEL
    }


@pytest.fixture(scope="module")
def gateway(start_gateway):
    """A gateway process whose drift window is 10 requests, scored from 3."""
    return start_gateway(drift_window_size="10", drift_min_samples="3")


def test_the_drift_route_answers_the_monitors_scores_and_their_history(gateway) -> None:
    status, quiet = _get(f"{gateway.url}/v1/models/{MODEL}/drift")
    assert status == 200
    assert quiet["model"] == MODEL and quiet["window_samples"] == 0 and quiet["min_samples"] == 3
    assert quiet["history"] == []  # nothing observed yet
    assert quiet["features"] and all(stats == {"psi": None} for stats in quiet["features"].values())

    before = datetime.now(timezone.utc)
    for body in _slices(300, 4, shift_hu=0.0):
        assert _predict(gateway.url, body) == 200
    status, drift = _get(f"{gateway.url}/v1/models/{MODEL}/drift")
    assert status == 200 and drift["window_samples"] == 4
    assert "image.intensity" in drift["features"] and drift["features"]["image.intensity"]["psi"] >= 0
    published = _published(gateway.url)  # no traffic since: the same window, the same scores
    answered = {(feature, stat): value for feature, stats in drift["features"].items() for stat, value in stats.items() if value is not None}
    assert answered == pytest.approx(published) and ("image.intensity", "ks") in answered

    assert 1 <= len(drift["history"]) <= 2  # one point per minute: these requests took well under two
    times = [datetime.fromisoformat(point["at"]) for point in drift["history"]]
    assert times == sorted(times) and all(before - timedelta(seconds=1) <= at <= datetime.now(timezone.utc) for at in times)
    assert drift["history"][-1]["scores"] == {feature: stats for feature, stats in drift["features"].items() if stats["psi"] is not None}


def test_an_unknown_model_has_no_drift(gateway) -> None:
    status, body = _get(f"{gateway.url}/v1/models/no_such_model/drift")
    assert status == 404 and body["code"] == "model_not_found"
