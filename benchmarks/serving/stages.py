"""Where the time goes: the gateway's stage histograms and Triton's per-model statistics,
read before and after a measurement and turned into mean milliseconds per request.

Both sources are cumulative counters, so a measurement is their difference; the time outside
model compute is then visible next to the client's latency.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

STAGES = ("receive", "decode", "preprocess", "infer", "postprocess")
TRITON_STAGES = ("queue", "compute_input", "compute_infer", "compute_output")

#: ``{stage: (seconds, count)}`` of one model from one or more gateways.
GatewayTotals = dict[str, tuple[float, float]]


def http_get(url: str, timeout_s: float = 10.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        return response.read()


def gateway_stage_totals(metrics_text: str, model: str) -> GatewayTotals:
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


def snapshot(metrics_urls: list[str], triton_http_url: str | None, served_name: str) -> tuple[GatewayTotals | None, dict[str, Any] | None]:
    """The counters of ``served_name`` now: summed over the gateways at ``metrics_urls``
    (replicas: their counters add up; None when there are none), and Triton's (None
    without a Triton)."""
    gateway: GatewayTotals | None = None
    for url in metrics_urls:
        gateway = gateway or {}
        for key, (seconds, count) in gateway_stage_totals(http_get(url).decode(), served_name).items():
            total = gateway.get(key, (0.0, 0.0))
            gateway[key] = (total[0] + seconds, total[1] + count)
    stats = triton_model_totals(json.loads(http_get(f"{triton_http_url}/v2/models/{served_name}/stats"))) if triton_http_url else None
    return gateway, stats


def stage_breakdown(
    gateway_before: GatewayTotals | None,
    gateway_after: GatewayTotals | None,
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
