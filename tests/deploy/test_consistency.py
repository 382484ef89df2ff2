"""Compose, Kubernetes, the Dockerfiles and the gateway's settings agree: images are pinned, every
MEDSERVE_* variable is a real setting, and ports and paths are the same everywhere."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from dimse.config import DimseSettings
from dimse.metrics import MetricsSettings
from gateway.config import Settings
from devtools.tritonserver import TritonPorts

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
SETTINGS_VARIABLES = {f"MEDSERVE_{name.upper()}" for name in Settings.model_fields}
# The DIMSE receiver's (docker-compose service dimse, StatefulSet medserve-dimse, dimse.Dockerfile).
RECEIVER_VARIABLES = {f"MEDSERVE_{name.upper()}" for cls in (DimseSettings, MetricsSettings) for name in cls.model_fields}
MEDSERVE_VARIABLE = re.compile(r"\bMEDSERVE_[A-Z0-9_]+\b")
# name[:tag][@sha256:digest]; a pinned reference has a tag other than "latest", or a digest.
IMAGE = re.compile(r"^(?P<name>[a-z0-9][a-z0-9._/-]*(?::\d+)?(?:/[a-z0-9._-]+)*)(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@sha256:(?P<digest>[0-9a-f]{64}))?$")


def _images(instructions, compose_raw, rendered) -> dict[str, str]:
    images = {}
    for dockerfile in sorted(DOCKER.glob("*.Dockerfile")):
        for instruction in instructions(dockerfile):
            if instruction.keyword == "FROM":
                images[f"{dockerfile.name} FROM"] = instruction.arguments.split()[0]
    for name, service in compose_raw["services"].items():
        images[f"docker-compose.yml service {name}"] = service["image"]
    for overlay, docs in rendered.items():
        for doc in docs:
            if doc["kind"] in ("Deployment", "StatefulSet"):
                for container in doc["spec"]["template"]["spec"]["containers"]:
                    images[f"k8s/overlays/{overlay} {doc['metadata']['name']}/{container['name']}"] = container["image"]
    return images


def test_every_image_reference_is_pinned(instructions, compose_raw, rendered) -> None:
    images = _images(instructions, compose_raw, rendered)
    assert len(images) >= 3 + 4 + 4
    for where, reference in images.items():
        match = IMAGE.match(reference)
        assert match, f"{where}: {reference!r} is not an image reference"
        assert match["digest"] or (match["tag"] and match["tag"] != "latest"), f"{where}: {reference!r} is not pinned"
        assert "${" not in reference, f"{where}: {reference!r} depends on a variable"


@pytest.mark.parametrize("image", ["busybox", "busybox:latest", "nvcr.io/nvidia/tritonserver"])
def test_the_pin_check_rejects_unpinned_references(image) -> None:
    match = IMAGE.match(image)
    assert not (match["digest"] or (match["tag"] and match["tag"] != "latest"))


def test_compose_and_kubernetes_run_the_images_compose_builds(compose_raw, rendered) -> None:
    built = {compose_raw["services"][s]["image"] for s in ("gateway", "dimse", "triton", "triton-cpu")}
    for overlay, docs in rendered.items():
        running = {c["image"] for d in docs if d["kind"] in ("Deployment", "StatefulSet") for c in d["spec"]["template"]["spec"]["containers"]}
        assert running == built, overlay


def test_the_triton_image_tag_names_its_ngc_release(instructions, compose_raw) -> None:
    (base,) = [i.arguments for i in instructions(DOCKER / "triton.Dockerfile") if i.keyword == "FROM"]
    release = re.search(r":(\d\d\.\d\d)-py3", base).group(1)
    assert compose_raw["services"]["triton"]["image"].endswith(f"-{release}")


def _medserve_variables(compose_raw, rendered, instructions) -> dict[str, set[str]]:
    used: dict[str, set[str]] = {}
    for name, service in compose_raw["services"].items():
        text = repr(service)
        used[f"docker-compose.yml {name}"] = set(MEDSERVE_VARIABLE.findall(text))
    for overlay, docs in rendered.items():
        for doc in docs:
            if doc["kind"] in ("Deployment", "StatefulSet"):
                for container in doc["spec"]["template"]["spec"]["containers"]:
                    used[f"k8s/{overlay} {doc['metadata']['name']}"] = (
                        {e["name"] for e in container.get("env", []) if e["name"].startswith("MEDSERVE_")}
                        | set(MEDSERVE_VARIABLE.findall(repr(container)))
                    )
    for dockerfile in sorted(DOCKER.glob("*.Dockerfile")):
        used[dockerfile.name] = set(MEDSERVE_VARIABLE.findall(dockerfile.read_text()))
    return used


def test_every_medserve_variable_is_a_setting_of_the_process_it_configures(compose_raw, rendered, instructions) -> None:
    used = _medserve_variables(compose_raw, rendered, instructions)
    receiver = lambda where: "dimse" in where  # noqa: E731 - compose dimse, k8s medserve-dimse, dimse.Dockerfile
    known = lambda where: RECEIVER_VARIABLES if receiver(where) else SETTINGS_VARIABLES  # noqa: E731
    unknown = {where: names - known(where) for where, names in used.items() if names - known(where)}
    assert unknown == {}, f"not fields of gateway.config.Settings / dimse's DimseSettings and MetricsSettings: {unknown}"
    assert used["docker-compose.yml gateway"] and used["k8s/gpu medserve-gateway"]
    assert used["docker-compose.yml dimse"] and used["k8s/gpu medserve-dimse"] and used["dimse.Dockerfile"]


def test_compose_and_kubernetes_configure_the_gateway_alike(compose_raw, rendered) -> None:
    compose_env = compose_raw["services"]["gateway"]["environment"]
    for overlay, docs in rendered.items():
        (container,) = [c for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "medserve-gateway"
                        for c in d["spec"]["template"]["spec"]["containers"]]
        k8s_env = {e["name"]: e.get("value") for e in container["env"]}
        assert set(compose_env) <= set(k8s_env), overlay
        assert k8s_env["MEDSERVE_TRITON_GRPC_URL"] == compose_env["MEDSERVE_TRITON_GRPC_URL"]
        assert k8s_env["MEDSERVE_AUDIT_LOG_PATH"] == compose_env["MEDSERVE_AUDIT_LOG_PATH"]
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert str(Path(compose_env["MEDSERVE_AUDIT_LOG_PATH"]).parent) in mounts
    assert "install -d -o medserve -g medserve -m 0750 /var/log/medserve" in (DOCKER / "gateway.Dockerfile").read_text()


def _port(address: str) -> int:
    return urlparse(f"//{address}").port


def _deployment(docs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == name]
    return doc


def _service_ports(docs: list[dict[str, Any]], name: str) -> dict[str, int]:
    (doc,) = [d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == name]
    return {p["name"]: p["port"] for p in doc["spec"]["ports"]}


def test_gateway_port_is_8080_everywhere(compose_profiles, rendered, instructions) -> None:
    port = Settings.model_fields["port"].default
    assert port == 8080
    gateway_dockerfile = instructions(DOCKER / "gateway.Dockerfile")
    assert [i.arguments for i in gateway_dockerfile if i.keyword == "EXPOSE"] == [str(port)]
    environment = " ".join(i.arguments for i in gateway_dockerfile if i.keyword == "ENV")
    assert re.search(r"MEDSERVE_PORT=(\d+)", environment).group(1) == str(port)
    for profile in compose_profiles.values():
        (published,) = profile["services"]["gateway"]["ports"]
        assert published["target"] == port
    for docs in rendered.values():
        (container,) = _deployment(docs, "medserve-gateway")["spec"]["template"]["spec"]["containers"]
        assert [p["containerPort"] for p in container["ports"]] == [port]
        assert _service_ports(docs, "medserve-gateway") == {"http": port}


def test_triton_ports_are_8000_8001_8002_everywhere(compose_profiles, rendered, instructions, compose_raw) -> None:
    expected = {"http": 8000, "grpc": 8001, "metrics": 8002}
    assert TritonPorts() == TritonPorts(**expected)  # the development launcher
    assert _port(Settings.model_fields["triton_grpc_url"].default) == expected["grpc"]
    triton_dockerfile = instructions(DOCKER / "triton.Dockerfile")
    assert [i.arguments for i in triton_dockerfile if i.keyword == "EXPOSE"] == ["8000 8001 8002"]
    flags = lambda args: {a.split("=")[0][2:-5]: int(a.split("=")[1]) for a in args if re.match(r"--(http|grpc|metrics)-port=", a)}  # noqa: E731
    assert flags([i for i in triton_dockerfile if i.keyword == "CMD"][-1].exec_form()) == expected
    for profile, service in (("gpu", "triton"), ("cpu", "triton-cpu")):
        resolved = compose_profiles[profile]["services"]
        assert flags(resolved[service]["command"]) == expected
        assert {p["target"] for p in resolved[service]["ports"]} == set(expected.values())
        assert _port(resolved["gateway"]["environment"]["MEDSERVE_TRITON_GRPC_URL"]) == expected["grpc"]
    for docs in rendered.values():
        (container,) = _deployment(docs, "triton")["spec"]["template"]["spec"]["containers"]
        assert flags(container["args"]) == expected
        assert {p["name"]: p["containerPort"] for p in container["ports"]} == expected
        assert _service_ports(docs, "triton") == expected
        (gateway,) = _deployment(docs, "medserve-gateway")["spec"]["template"]["spec"]["containers"]
        grpc_url = {e["name"]: e.get("value") for e in gateway["env"]}["MEDSERVE_TRITON_GRPC_URL"]
        assert grpc_url == f"triton:{expected['grpc']}"


def test_probe_and_scrape_paths_are_routes_of_the_gateway(compose_profiles, rendered) -> None:
    from gateway.main import create_app

    routes = set(create_app(Settings()).openapi()["paths"])
    used = {"/metrics"}  # docker/prometheus/prometheus.yml and the ServiceMonitor (test_prometheus, test_kubernetes)
    used |= {re.search(r"http://127\.0\.0\.1:8080(/\w+)", " ".join(p["services"]["gateway"]["healthcheck"]["test"])).group(1)
             for p in compose_profiles.values()}
    for docs in rendered.values():
        (container,) = _deployment(docs, "medserve-gateway")["spec"]["template"]["spec"]["containers"]
        used |= {container[probe]["httpGet"]["path"] for probe in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert used == {"/healthz", "/readyz", "/metrics"}
    assert used <= routes


def test_model_repository_path_is_the_same_everywhere(compose_profiles, rendered, instructions) -> None:
    triton_dockerfile = instructions(DOCKER / "triton.Dockerfile")
    assert "--model-repository=/models" in [i for i in triton_dockerfile if i.keyword == "CMD"][-1].exec_form()
    for profile, service in (("gpu", "triton"), ("cpu", "triton-cpu")):
        command = compose_profiles[profile]["services"][service]["command"]
        assert "--model-repository=/models" in command
    for docs in rendered.values():
        (container,) = _deployment(docs, "triton")["spec"]["template"]["spec"]["containers"]
        assert "--model-repository=/models" in container["args"]
        assert "/models" in {m["mountPath"] for m in container["volumeMounts"]}
