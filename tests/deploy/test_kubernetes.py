"""k8s/: each overlay renders with the real kustomize, every object validates (strictly) against the
Kubernetes API schema of a pinned version or, for ServiceMonitor, against prometheus-operator's
CRD schema, and the objects are wired as designed."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import kubernetes_validate
import pydantic
import pytest
import yaml
from cloudcoil.models.prometheus_operator.v1 import ServiceMonitor

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES_VERSION = "1.31.0"
OVERLAYS = ["gpu", "cpu"]

# Custom resources and the schema-derived models that validate them (prometheus-operator v0.80.1).
CUSTOM_RESOURCES: dict[tuple[str, str], type[pydantic.BaseModel]] = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): ServiceMonitor,
}


def _find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def _pod_specs(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [(d["metadata"]["name"], d["spec"]["template"]["spec"]) for d in docs if d["kind"] in ("Deployment", "StatefulSet")]


def _container(docs: list[dict[str, Any]], deployment: str) -> dict[str, Any]:
    (container,) = _find(docs, "Deployment", deployment)["spec"]["template"]["spec"]["containers"]
    return container


def _validate_custom_resource(doc: dict[str, Any]) -> None:
    """Validate against the CRD-derived model, strictly: a field the schema does not know is
    dropped by the model, so the round trip must give back the document unchanged."""
    model = CUSTOM_RESOURCES[(doc["apiVersion"], doc["kind"])].model_validate(doc)
    assert model.model_dump(by_alias=True, exclude_unset=True, mode="json") == doc, "fields unknown to the CRD schema"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_rendered_object_is_valid(rendered, overlay) -> None:
    without_api_schema = set()
    for doc in rendered[overlay]:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            without_api_schema.add((doc["apiVersion"], doc["kind"]))
            _validate_custom_resource(doc)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(map(str, error.path))
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {path}: {error.message}")
    assert without_api_schema == set(CUSTOM_RESOURCES), "only the known custom resources lack a Kubernetes schema"


@pytest.mark.parametrize(
    "mutation",
    [
        lambda d: d["spec"]["template"]["spec"]["containers"][0].update(readinesProbe={}),  # unknown field
        lambda d: d["spec"]["template"]["spec"]["containers"][0]["ports"][0].update(containerPort="8080"),  # wrong type
    ],
    ids=["unknown-field", "wrong-type"],
)
def test_the_kubernetes_validation_is_not_vacuous(rendered, mutation) -> None:
    broken = copy.deepcopy(_find(rendered["gpu"], "Deployment", "medserve-gateway"))
    mutation(broken)
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize(
    "mutation",
    [
        lambda d: d["spec"]["endpoints"][0].update(interval="15 seconds"),  # not a duration
        lambda d: d["spec"]["endpoints"][0].update(pathh="/metrics"),  # unknown field
    ],
    ids=["bad-duration", "unknown-field"],
)
def test_the_service_monitor_validation_is_not_vacuous(rendered, mutation) -> None:
    broken = copy.deepcopy(_find(rendered["gpu"], "ServiceMonitor", "triton"))
    mutation(broken)
    with pytest.raises((pydantic.ValidationError, AssertionError)):
        _validate_custom_resource(broken)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_everything_lives_in_the_medserve_namespace(rendered, overlay) -> None:
    namespaced = [d for d in rendered[overlay] if d["kind"] != "Namespace"]
    assert {d["metadata"].get("namespace") for d in namespaced} == {"medserve"}
    namespace = _find(rendered[overlay], "Namespace", "medserve")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_run_restricted(rendered, overlay) -> None:
    """runAsNonRoot, no privilege escalation, read-only root, all capabilities dropped, RuntimeDefault seccomp."""
    for name, pod in _pod_specs(rendered[overlay]):
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert pod["automountServiceAccountToken"] is False, name
        for container in pod.get("initContainers", []) + pod["containers"]:
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["capabilities"] == {"drop": ["ALL"]}, name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_has_requests_and_limits(rendered, overlay) -> None:
    for name, pod in _pod_specs(rendered[overlay]):
        for container in pod["containers"]:
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]) and {"cpu", "memory"} <= set(resources["limits"]), name


def test_gpu_overlay_gives_triton_a_gpu_and_cpu_overlay_none(rendered) -> None:
    triton = _container(rendered["gpu"], "triton")
    assert triton["resources"]["requests"]["nvidia.com/gpu"] == triton["resources"]["limits"]["nvidia.com/gpu"] == "1"
    pod = _find(rendered["gpu"], "Deployment", "triton")["spec"]["template"]["spec"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert "nvidia.com/gpu" not in yaml.safe_dump_all(rendered["cpu"])


@pytest.mark.parametrize(("overlay", "config_name"), [("gpu", "tensorrt"), ("cpu", "onnxruntime_cpu")])
def test_triton_serves_the_repository_in_poll_mode(rendered, overlay, config_name) -> None:
    triton = _container(rendered[overlay], "triton")
    assert {"--model-repository=/models", "--model-control-mode=poll", "--repository-poll-secs=30",
            "--model-config-name=$(TRITON_MODEL_CONFIG_NAME)"} <= set(triton["args"])
    assert {"name": "TRITON_MODEL_CONFIG_NAME", "value": config_name} in triton["env"]
    (mount,) = [m for m in triton["volumeMounts"] if m["mountPath"] == "/models"]
    assert mount["readOnly"] is True
    pod = _find(rendered[overlay], "Deployment", "triton")["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    _find(rendered[overlay], "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])


@pytest.mark.parametrize(
    ("deployment", "probes"),
    [
        ("triton", {"startupProbe": "/v2/health/live", "livenessProbe": "/v2/health/live", "readinessProbe": "/v2/health/ready"}),
        ("medserve-gateway", {"startupProbe": "/healthz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"}),
    ],
)
def test_probes(rendered, deployment, probes) -> None:
    container = _container(rendered["gpu"], deployment)
    port_names = {p["name"] for p in container["ports"]}
    for probe, path in probes.items():
        assert container[probe]["httpGet"]["path"] == path
        assert container[probe]["httpGet"]["port"] in port_names


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_autoscalers_scale_the_deployments_on_metrics_the_adapter_serves(rendered, overlay) -> None:
    adapter = yaml.safe_load((ROOT / "k8s" / "monitoring" / "prometheus-adapter-values.yaml").read_text())
    served = {rule["name"]["as"] for rule in adapter["rules"]["custom"]}
    hpas = {d["metadata"]["name"]: d for d in rendered[overlay] if d["kind"] == "HorizontalPodAutoscaler"}
    assert set(hpas) == {"medserve-gateway", "triton"}
    for name, hpa in hpas.items():
        assert hpa["apiVersion"] == "autoscaling/v2"
        target = hpa["spec"]["scaleTargetRef"]
        _find(rendered[overlay], target["kind"], target["name"])
        assert "replicas" not in _find(rendered[overlay], "Deployment", target["name"])["spec"], "the HPA owns replicas"
        for metric in hpa["spec"]["metrics"]:
            if metric["type"] == "Pods":
                assert metric["pods"]["metric"]["name"] in served
    gateway_metrics = {m["type"]: m for m in hpas["medserve-gateway"]["spec"]["metrics"]}
    assert gateway_metrics["Resource"]["resource"]["name"] == "cpu"
    assert gateway_metrics["Pods"]["pods"]["metric"]["name"] == "medserve_requests_in_flight"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_disruption_budgets_cover_both_deployments(rendered, overlay) -> None:
    pod_labels = {name: _find(rendered[overlay], "Deployment", name)["spec"]["template"]["metadata"]["labels"]
                  for name in ("medserve-gateway", "triton")}
    covered = set()
    for pdb in (d for d in rendered[overlay] if d["kind"] == "PodDisruptionBudget"):
        selector = pdb["spec"]["selector"]["matchLabels"]
        covered |= {name for name, labels in pod_labels.items() if selector.items() <= labels.items()}
    assert covered == set(pod_labels)


def test_only_the_gateway_reaches_triton_and_only_prometheus_its_metrics(rendered) -> None:
    docs = rendered["gpu"]
    deny = _find(docs, "NetworkPolicy", "default-deny-ingress")["spec"]
    assert deny["podSelector"] == {} and deny["policyTypes"] == ["Ingress"] and "ingress" not in deny
    policy = _find(docs, "NetworkPolicy", "triton")["spec"]
    assert policy["podSelector"]["matchLabels"] == _find(docs, "Deployment", "triton")["spec"]["selector"]["matchLabels"]
    gateway_labels = _find(docs, "Deployment", "medserve-gateway")["spec"]["template"]["metadata"]["labels"]
    rules = {tuple(p["port"] for p in rule["ports"]): rule["from"] for rule in policy["ingress"]}
    assert set(rules) == {(8001,), (8002,)}
    (from_gateway,) = rules[(8001,)]
    assert set(from_gateway) == {"podSelector"} and from_gateway["podSelector"]["matchLabels"].items() <= gateway_labels.items()
    (from_prometheus,) = rules[(8002,)]
    assert from_prometheus["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "monitoring"}
    assert from_prometheus["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "prometheus"}


def test_service_monitors_scrape_the_jobs_the_alerts_expect(rendered) -> None:
    """prometheus-operator names the job after the Service: the same job names as docker/prometheus."""
    docs = rendered["gpu"]
    prometheus = yaml.safe_load((ROOT / "docker" / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    for monitor in (d for d in docs if d["kind"] == "ServiceMonitor"):
        services = [d for d in docs if d["kind"] == "Service"
                    and monitor["spec"]["selector"]["matchLabels"].items() <= d["metadata"]["labels"].items()]
        assert len(services) == 1, monitor["metadata"]["name"]
        service = services[0]
        assert service["metadata"]["name"] in jobs
        (endpoint,) = monitor["spec"]["endpoints"]
        (port,) = [p for p in service["spec"]["ports"] if p["name"] == endpoint["port"]]
        assert endpoint["path"] == jobs[service["metadata"]["name"]].get("metrics_path", "/metrics")
        assert str(port["port"]) == jobs[service["metadata"]["name"]]["static_configs"][0]["targets"][0].rsplit(":", 1)[1]


def test_dashboard_config_map_is_generated_from_the_one_dashboard_file(rendered) -> None:
    dashboard = (ROOT / "docker" / "grafana" / "dashboards" / "medserve.json").read_text()
    for overlay in OVERLAYS:
        config_map = _find(rendered[overlay], "ConfigMap", "medserve-grafana-dashboard")
        assert config_map["data"] == {"medserve.json": dashboard}
        assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    uid = json.loads(dashboard)["uid"]
    copies = [p for p in ROOT.glob("k8s/**/*") if p.is_file() and f'"uid": "{uid}"' in p.read_text()]
    assert copies == [], "the dashboard JSON exists once, under docker/grafana/dashboards/"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_receiver_is_one_stateful_pod_sharing_the_node_s_volume_and_job_store_with_the_gateway(rendered, overlay) -> None:
    docs = rendered[overlay]
    receiver = _find(docs, "StatefulSet", "medserve-dimse")
    assert receiver["spec"]["replicas"] == 1 and receiver["spec"]["serviceName"] == "medserve-dimse"
    _find(docs, "Service", "medserve-dimse")  # the governing Service
    pods = {"medserve-dimse": receiver["spec"]["template"]["spec"], "medserve-gateway": _find(docs, "Deployment", "medserve-gateway")["spec"]["template"]["spec"]}
    for name, pod in pods.items():
        (container,) = pod["containers"]
        env = {e["name"]: e for e in container["env"]}
        assert env["MEDSERVE_WORK_DIR"]["value"] == "/var/lib/medserve", name
        assert env["MEDSERVE_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "medserve-database", "key": "url"}, name
        (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/var/lib/medserve"]
        (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
        assert volume["persistentVolumeClaim"]["claimName"] == "medserve-node-data", name
    claim = _find(docs, "PersistentVolumeClaim", "medserve-node-data")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"], "gateway pods read the spool the receiver writes"


def test_the_receiver_s_ports_and_probes(rendered) -> None:
    (container,) = _find(rendered["gpu"], "StatefulSet", "medserve-dimse")["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"dicom": 11112, "metrics": 9112}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert (env["MEDSERVE_DIMSE_PORT"], env["MEDSERVE_DIMSE_METRICS_PORT"]) == ("11112", "9112")
    for probe in ("startupProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["exec"]["command"] == ["python", "-m", "dimse.echo", "127.0.0.1", "11112"]
    dicom = _find(rendered["gpu"], "Service", "medserve-dimse-dicom")["spec"]
    assert dicom["type"] == "LoadBalancer" and [(p["port"], p["targetPort"]) for p in dicom["ports"]] == [(11112, "dicom")]
    assert dicom["externalTrafficPolicy"] == "Local", "the NetworkPolicy's ipBlock sees the PACS' own address"


def test_the_hospital_network_reaches_the_receiver_s_11112_and_only_prometheus_its_metrics(rendered) -> None:
    docs = rendered["gpu"]
    policy = _find(docs, "NetworkPolicy", "medserve-dimse")["spec"]
    assert policy["podSelector"]["matchLabels"] == _find(docs, "StatefulSet", "medserve-dimse")["spec"]["selector"]["matchLabels"]
    rules = {tuple(p["port"] for p in rule["ports"]): rule["from"] for rule in policy["ingress"]}
    assert set(rules) == {(11112,), (9112,)}
    (hospital,) = rules[(11112,)]
    assert set(hospital) == {"ipBlock"} and hospital["ipBlock"]["cidr"] == _find(docs, "Service", "medserve-dimse-dicom")["spec"]["loadBalancerSourceRanges"][0]
    (from_prometheus,) = rules[(9112,)]
    assert from_prometheus["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "monitoring"}
    assert from_prometheus["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "prometheus"}
    assert _find(docs, "ServiceMonitor", "medserve-dimse")["spec"]["endpoints"][0]["port"] == "metrics"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_gateway_reads_routes_a_valid_file_mounted_from_its_config_map(rendered, overlay, tmp_path) -> None:
    from jobs.routing import RoutingRules

    docs = rendered[overlay]
    container = _container(docs, "medserve-gateway")
    env = {item["name"]: item.get("value") for item in container["env"]}
    mount = next(m for m in container["volumeMounts"] if m["name"] == "routes")
    assert env["MEDSERVE_ROUTES"] == f"{mount['mountPath']}/routes.yaml" and mount["readOnly"]
    config_map = _find(docs, "ConfigMap", "medserve-routes")
    (tmp_path / "routes.yaml").write_text(config_map["data"]["routes.yaml"])
    rules = RoutingRules.load(tmp_path / "routes.yaml")
    assert [route.models for route in rules.routes] == ["auto"] and rules.destinations == {}
    assert {"secretRef": {"name": "medserve-destination-tokens", "optional": True}} in container["envFrom"]


def test_the_commented_destination_example_of_the_routes_config_map_is_valid(tmp_path) -> None:
    from jobs.routing import RoutingRules

    text = (ROOT / "k8s" / "base" / "gateway" / "routes.yaml").read_text()
    example = [line.removeprefix("#   ") for line in text.splitlines() if line.startswith("#   ") and not line.startswith("#   kubectl")]
    (tmp_path / "routes.yaml").write_text("\n".join(example))
    rules = RoutingRules.load(tmp_path / "routes.yaml")
    assert set(rules.destinations) == {"pacs", "archive"} and rules.routes[0].send[0].destination == "pacs"
