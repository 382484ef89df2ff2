"""docker-compose.yml: valid against the compose-spec JSON schema, accepted by Docker Compose itself
for both profiles, and wired as designed (GPU reservation, health-gated start, poll mode)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose_spec_schema(docker_compose: str) -> dict[str, Any]:
    """The compose-spec JSON schema that Docker Compose v2.40.3 validates with.

    compose-go embeds schema/compose-spec.json verbatim in the binary (go:embed), so the schema is
    read from the very tool that runs the file rather than from a second, drifting copy."""
    binary = Path(docker_compose).read_bytes()
    ids = [m.start() for m in re.finditer(rb'"\$id":\s*"compose_spec\.json"', binary)]
    assert len(ids) == 1, f"expected one embedded compose-spec schema, found {len(ids)}"
    start = binary.rfind(b"{", 0, ids[0])
    text = binary[start : start + 1_000_000].decode("utf-8", errors="replace")
    schema, _ = json.JSONDecoder().raw_decode(text)
    assert schema["title"] == "Compose Specification" and "service" in schema["definitions"]
    return schema


def test_compose_file_is_valid_against_the_compose_spec_schema(compose_raw, compose_spec_schema) -> None:
    validator = jsonschema.Draft7Validator(compose_spec_schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(compose_raw)]
    assert errors == []


def test_the_schema_check_is_not_vacuous(compose_raw, compose_spec_schema) -> None:
    broken = json.loads(json.dumps(compose_raw))
    broken["services"]["gateway"]["healthchek"] = broken["services"]["gateway"].pop("healthcheck")
    assert not jsonschema.Draft7Validator(compose_spec_schema).is_valid(broken)


def test_each_profile_runs_one_triton_the_gateway_the_receiver_prometheus_and_grafana(compose_profiles) -> None:
    assert set(compose_profiles["gpu"]["services"]) == {"triton", "gateway", "dimse", "prometheus", "grafana"}
    assert set(compose_profiles["cpu"]["services"]) == {"triton-cpu", "gateway", "dimse", "prometheus", "grafana"}


def _devices(service: dict[str, Any]) -> list[dict[str, Any]]:
    return ((service.get("deploy") or {}).get("resources") or {}).get("reservations", {}).get("devices", [])


def _flag(service: dict[str, Any], name: str) -> str:
    (value,) = [arg.split("=", 1)[1] for arg in service["command"] if arg.startswith(f"--{name}=")]
    return value


def test_gpu_triton_reserves_a_gpu_and_cpu_triton_does_not(compose_profiles) -> None:
    (device,) = _devices(compose_profiles["gpu"]["services"]["triton"])
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"] and device["count"] == 1
    assert _devices(compose_profiles["cpu"]["services"]["triton-cpu"]) == []
    assert _flag(compose_profiles["cpu"]["services"]["triton-cpu"], "allow-gpu-metrics") == "false"


@pytest.mark.parametrize(
    ("profile", "service", "variable", "default"),
    [
        ("gpu", "triton", "TRITON_MODEL_CONFIG_NAME", "tensorrt"),  # configs/tensorrt.pbtxt, KIND_GPU
        ("cpu", "triton-cpu", "TRITON_CPU_MODEL_CONFIG_NAME", "onnxruntime_cpu"),  # else config.pbtxt, KIND_CPU
    ],
)
def test_model_config_name_comes_from_an_environment_variable(compose_profiles, compose_config, profile, service, variable, default) -> None:
    assert _flag(compose_profiles[profile]["services"][service], "model-config-name") == default
    chosen = compose_config(profile, **{variable: "onnxruntime"})
    assert _flag(chosen["services"][service], "model-config-name") == "onnxruntime"


@pytest.mark.parametrize(("profile", "service"), [("gpu", "triton"), ("cpu", "triton-cpu")])
def test_triton_polls_the_mounted_repository_and_reports_health(compose_profiles, profile, service) -> None:
    triton = compose_profiles[profile]["services"][service]
    assert _flag(triton, "model-control-mode") == "poll" and _flag(triton, "repository-poll-secs") == "30"
    assert _flag(triton, "model-repository") == "/models"
    (mount,) = [v for v in triton["volumes"] if v["target"] == "/models"]
    assert mount["type"] == "bind" and mount["read_only"] and Path(mount["source"]) == ROOT / "model_repository"
    assert "http://127.0.0.1:8000/v2/health/ready" in " ".join(triton["healthcheck"]["test"])
    aliases = set((triton.get("networks", {}).get("default") or {}).get("aliases") or []) | {service}
    assert "triton" in aliases, "the gateway and Prometheus reach either Triton as 'triton'"


@pytest.mark.parametrize("profile", ["gpu", "cpu"])
def test_gateway_starts_once_triton_is_healthy(compose_profiles, profile) -> None:
    services = compose_profiles[profile]["services"]
    triton = "triton" if profile == "gpu" else "triton-cpu"
    dependency = services["gateway"]["depends_on"][triton]
    assert dependency["condition"] == "service_healthy"
    assert "http://127.0.0.1:8080/healthz" in " ".join(services["gateway"]["healthcheck"]["test"])


def test_gateway_container_is_locked_down(compose_profiles) -> None:
    gateway = compose_profiles["gpu"]["services"]["gateway"]
    assert gateway["read_only"] is True and gateway["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in gateway["security_opt"]
    assert not [k for k in gateway["environment"] if "KEY" in k], "secrets come from docker/gateway.secrets.env"


def test_prometheus_and_grafana_read_the_provisioned_files(compose_profiles) -> None:
    services = compose_profiles["gpu"]["services"]
    binds = {v["target"]: Path(v["source"]) for s in ("prometheus", "grafana") for v in services[s]["volumes"] if v["type"] == "bind"}
    assert binds["/etc/prometheus"] == ROOT / "docker" / "prometheus"
    assert binds["/etc/grafana/provisioning"] == ROOT / "docker" / "grafana" / "provisioning"
    assert binds["/etc/grafana/dashboards"] == ROOT / "docker" / "grafana" / "dashboards"
    assert "--config.file=/etc/prometheus/prometheus.yml" in services["prometheus"]["command"]


@pytest.mark.parametrize("profile", ["gpu", "cpu"])
def test_the_receiver_listens_on_11112_and_shares_the_node_s_work_directory_with_the_gateway(compose_profiles, profile) -> None:
    services = compose_profiles[profile]["services"]
    dimse, gateway = services["dimse"], services["gateway"]
    assert [(p["target"], p["published"]) for p in dimse["ports"]] == [(11112, "11112")]
    work = {s: dict(services[s]["environment"])["MEDSERVE_WORK_DIR"] for s in ("dimse", "gateway")}
    assert work == {"dimse": "/var/lib/medserve", "gateway": "/var/lib/medserve"}
    volume = lambda service: {v["source"] for v in service["volumes"] if v["type"] == "volume" and v["target"] == "/var/lib/medserve"}  # noqa: E731
    assert volume(dimse) == volume(gateway) == {"node-data"}, "one spool and one SQLite job store for both"
    assert dimse["environment"]["MEDSERVE_DIMSE_PORT"] == "11112" and dimse["environment"]["MEDSERVE_DIMSE_METRICS_PORT"] == "9112"
    assert "http://127.0.0.1:9112/healthz" in " ".join(dimse["healthcheck"]["test"])
    assert dimse["read_only"] is True and dimse["cap_drop"] == ["ALL"] and "no-new-privileges:true" in dimse["security_opt"]
    assert not [p for p in dimse["ports"] if p["target"] == 9112], "metrics are for Prometheus on the compose network only"
