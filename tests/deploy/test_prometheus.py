"""Prometheus and Grafana configuration: promtool accepts the config and the rules, the alert
rules behave as their unit tests say, every dashboard and adapter query is valid PromQL, and every
query speaks the metric contract of the gateway and Triton."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "docker" / "prometheus"
GRAFANA = ROOT / "docker" / "grafana"

# The metric contract: the gateway exposes exactly these (type, labels); Triton its nv_inference_*.
GATEWAY_METRICS = {
    "medserve_request_duration_seconds": ("histogram", ("model", "route", "status_class")),
    "medserve_stage_duration_seconds": ("histogram", ("model", "stage")),
    "medserve_requests_in_flight": ("gauge", ()),
    "medserve_rejections_total": ("counter", ("reason",)),
    "medserve_errors_total": ("counter", ("code",)),
    "medserve_patches_per_request": ("histogram", ("model",)),
    "medserve_batches_per_request": ("histogram", ("model",)),
    "medserve_inputs_total": ("counter", ("model", "modality", "manufacturer", "transfer_syntax")),
    "medserve_drift_score": ("gauge", ("model", "feature", "stat")),
    "medserve_drift_window_samples": ("gauge", ("model",)),
    "medserve_input_quality_total": ("counter", ("model", "feature", "action")),
    "medserve_job_stage_seconds": ("histogram", ("model", "stage")),
    "medserve_job_outcomes_total": ("counter", ("model", "state")),
    "medserve_jobs": ("gauge", ("state",)),
    "medserve_jobs_oldest_queued_age_seconds": ("gauge", ()),
    "medserve_job_webhook_failures_total": ("counter", ()),
    "medserve_deliveries": ("gauge", ("state",)),
    "medserve_delivery_attempts_total": ("counter", ("destination", "outcome")),
    "medserve_delivery_seconds": ("histogram", ("destination",)),
}
# The DIMSE receiver's (python -m dimse, dimse.metrics.ReceiverMetrics).
DIMSE_METRICS = {
    "medserve_dimse_associations_total": ("counter", ("outcome",)),
    "medserve_dimse_associations_active": ("gauge", ()),
    "medserve_dimse_instances_received_total": ("counter", ("outcome",)),
    "medserve_dimse_instances_refused_total": ("counter", ("reason",)),
    "medserve_dimse_received_bytes_total": ("counter", ()),
    "medserve_dimse_series_completed_total": ("counter", ()),
    "medserve_dimse_spool_bytes": ("gauge", ()),
    "medserve_dimse_spool_disk_free_bytes": ("gauge", ()),
    "medserve_dimse_spool_disk_size_bytes": ("gauge", ()),
}
HISTOGRAMS = {name for name, (kind, _) in GATEWAY_METRICS.items() if kind == "histogram"}
OTHER_METRICS = {name for name, (kind, _) in (GATEWAY_METRICS | DIMSE_METRICS).items() if kind != "histogram"} | {
    "nv_inference_request_success",
    "nv_inference_request_failure",
    "nv_inference_count",
    "nv_inference_exec_count",
    "nv_inference_request_duration_us",
    "nv_inference_queue_duration_us",
    "nv_inference_compute_infer_duration_us",
}
CONTRACT = OTHER_METRICS | {f"{h}{suffix}" for h in HISTOGRAMS for suffix in ("_bucket", "_sum", "_count")}
METRIC_NAME = re.compile(r"\b(?:medserve|nv)_[a-z_]+\b")


def test_promtool_accepts_the_config_and_its_rule_files(tool, run) -> None:
    result = run([tool("promtool"), "check", "config", str(PROMETHEUS / "prometheus.yml")])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_accepts_the_alert_rules(tool, run) -> None:
    result = run([tool("promtool"), "check", "rules", str(PROMETHEUS / "alerts.yml")])
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_fire_as_their_unit_tests_expect(tool, run) -> None:
    """tests/deploy/alerts_test.yml feeds series to the rules and checks which alerts fire when."""
    result = run([tool("promtool"), "test", "rules", str(Path(__file__).with_name("alerts_test.yml"))])
    assert result.returncode == 0, result.stdout + result.stderr


def test_alerts_cover_latency_errors_rejections_drift_and_triton(alert_rules) -> None:
    assert {rule["alert"] for rule in alert_rules} >= {
        "MedserveHighP99Latency",
        "MedserveHighErrorRatio",
        "MedserveHighRejectionRatio",
        "MedserveInputDriftPSIWarning",
        "MedserveInputDriftPSI",
        "MedserveInputDriftKS",
        "TritonHighQueueTime",
        "TritonDown",
        "MedserveDimseReceiverDown",
        "MedserveDimseSpoolNearlyFull",
        "MedserveJobsFailing",
        "MedserveOldestQueuedJobTooOld",
    }
    for rule in alert_rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]


def test_every_alert_is_unit_tested(alert_rules) -> None:
    tested = {case["alertname"] for test in yaml.safe_load(Path(__file__).with_name("alerts_test.yml").read_text())["tests"]
              for case in test["alert_rule_test"]}
    assert {rule["alert"] for rule in alert_rules} - tested == set()


def _check_as_rules(queries, tool, run, tmp_path: Path) -> None:
    """promtool has no 'check expression'; a recording rule per query makes it parse each one."""
    rules = {"groups": [{"name": "queries", "rules": [
        {"record": f"check:query_{index}", "expr": query.expr} for index, query in enumerate(queries)
    ]}]}
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump(rules, sort_keys=False))
    result = run([tool("promtool"), "check", "rules", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr + "\n" + "\n".join(
        f"check:query_{i} = {q.source}: {q.expr}" for i, q in enumerate(queries))
    assert f"SUCCESS: {len(queries)} rules found" in result.stdout


def test_every_dashboard_query_is_valid_promql(dashboard_queries, tool, run, tmp_path) -> None:
    assert len(dashboard_queries) >= 20
    _check_as_rules(dashboard_queries, tool, run, tmp_path)


def test_every_adapter_query_is_valid_promql(adapter_queries, tool, run, tmp_path) -> None:
    _check_as_rules(adapter_queries, tool, run, tmp_path)


def test_the_gateway_defines_the_contract_metrics() -> None:
    from prometheus_client.metrics import MetricWrapperBase

    import gateway.metrics
    from gateway.drift import DRIFT_PUBLISHER
    from gateway.metrics import JOB_STORE_METRICS

    defined = {}
    for metric in vars(gateway.metrics).values():
        if isinstance(metric, MetricWrapperBase):
            name = metric._name + ("_total" if metric._type == "counter" else "")
            defined[name] = (metric._type, tuple(metric._labelnames))
    for family in [*DRIFT_PUBLISHER.describe(), *JOB_STORE_METRICS.describe()]:  # computed at scrape time by collectors
        defined[family.name + ("_total" if family.type == "counter" else "")] = (family.type, tuple(family._labelnames))
    assert defined == GATEWAY_METRICS


def test_the_receiver_defines_the_contract_metrics(tmp_path) -> None:
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from dimse.metrics import ReceiverMetrics

    metrics = ReceiverMetrics(tmp_path, active=lambda: 0)
    metrics.associations.labels("accepted")
    metrics.instances_received.labels("stored")
    metrics.instances_refused.labels("unreadable_dicom")
    defined = {}
    for family in text_string_to_metric_families(generate_latest(metrics.registry).decode()):
        if family.name.endswith("_created"):  # prometheus-client's counter creation times
            continue
        labels = {name for sample in family.samples for name in sample.labels}
        defined[family.name + ("_total" if family.type == "counter" else "")] = (family.type, tuple(sorted(labels)))
    assert defined == DIMSE_METRICS


def test_queries_use_only_contract_metrics(dashboard_queries, alert_rules, adapter_queries) -> None:
    expressions = [q.expr for q in dashboard_queries + adapter_queries] + [rule["expr"] for rule in alert_rules]
    used = {name for expr in expressions for name in METRIC_NAME.findall(expr)}
    assert used - CONTRACT == set()


def test_dashboard_shows_every_contract_metric(dashboard_queries) -> None:
    used = {name for q in dashboard_queries for name in METRIC_NAME.findall(q.expr)}
    shown = {re.sub(r"_(bucket|sum|count)$", "", name) if re.sub(r"_(bucket|sum|count)$", "", name) in HISTOGRAMS else name
             for name in used}
    assert (HISTOGRAMS | OTHER_METRICS) - shown == set()


@pytest.mark.parametrize(
    ("title", "must_contain"),
    [
        ("Average batch size", ["nv_inference_count", "nv_inference_exec_count"]),
        ("Triton queue vs compute time per request", ["nv_inference_queue_duration_us", "nv_inference_compute_infer_duration_us"]),
        ("Request latency p50 / p95 / p99 by model", ["histogram_quantile(0.5,", "histogram_quantile(0.95,", "histogram_quantile(0.99,"]),
        ("Stage latency p50 / p95 / p99 by model and stage", ["by (model, stage, le)"]),
        ("Errors by code", ["by (code)"]),
        ("Predictions in flight", ["medserve_requests_in_flight"]),
    ],
)
def test_dashboard_panels(dashboard_panels, title, must_contain) -> None:
    (panel,) = [p for p in dashboard_panels if p["title"] == title]
    text = " ".join(target["expr"] for target in panel["targets"])
    assert all(fragment in text for fragment in must_contain)


def test_dashboard_is_well_formed(dashboard_panels) -> None:
    dashboard = json.loads((GRAFANA / "dashboards" / "medserve.json").read_text())
    assert [p["id"] for p in dashboard_panels] == sorted({p["id"] for p in dashboard_panels})
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert variables["model"]["includeAll"] and variables["model"]["allValue"] == ".*"
    for panel in dashboard_panels:
        for target in panel.get("targets", []):
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]


def test_scrape_jobs_and_targets() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["medserve-gateway"]["static_configs"][0]["targets"] == ["gateway:8080"]
    assert jobs["triton"]["static_configs"][0]["targets"] == ["triton:8002"]
    assert jobs["medserve-dimse"]["static_configs"][0]["targets"] == ["dimse:9112"]
    assert {jobs[name].get("metrics_path", "/metrics") for name in ("medserve-gateway", "triton", "medserve-dimse")} == {"/metrics"}
    assert config["rule_files"] == ["alerts.yml"]


def test_grafana_provisioning_points_at_compose_paths_and_services(compose_profiles) -> None:
    (datasource,) = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert datasource["type"] == "prometheus" and datasource["url"] == "http://prometheus:9090"
    assert "prometheus" in compose_profiles["gpu"]["services"]
    (provider,) = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "medserve.yml").read_text())["providers"]
    grafana = compose_profiles["gpu"]["services"]["grafana"]
    mounted = {v["target"]: Path(v["source"]) for v in grafana["volumes"] if v["type"] == "bind"}
    assert mounted[provider["options"]["path"]] == GRAFANA / "dashboards"
