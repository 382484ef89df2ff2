"""docker/*.Dockerfile: hadolint finds nothing, and each image is built the way the design says."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
DOCKERFILES = sorted(DOCKER.glob("*.Dockerfile"))


def test_the_four_images_are_there() -> None:
    assert [p.name for p in DOCKERFILES] == ["dimse.Dockerfile", "export.Dockerfile", "gateway.Dockerfile", "triton.Dockerfile"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_finds_nothing(dockerfile: Path, tool, run) -> None:
    """docker/hadolint.yaml: every finding fails (threshold info); base images from Docker Hub or NGC only."""
    result = run([tool("hadolint"), "--config", str(DOCKER / "hadolint.yaml"), "--no-color", str(dockerfile)])
    assert result.returncode == 0, f"hadolint {dockerfile.name}:\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_build_context_is_an_allow_list(dockerfile: Path) -> None:
    """BuildKit reads <Dockerfile>.dockerignore beside the Dockerfile; each excludes everything first."""
    ignore = dockerfile.with_name(dockerfile.name + ".dockerignore")
    lines = [line for line in ignore.read_text().splitlines() if line and not line.startswith("#")]
    assert lines[0] == "**"
    assert not [line for line in lines if line.startswith(("!.venv", "!build", "!model_repository"))]


def _arguments(instructions, dockerfile: str, keyword: str) -> list[str]:
    return [i.arguments for i in instructions(DOCKER / dockerfile) if i.keyword == keyword]


def _last(instructions, dockerfile: str, keyword: str):
    return [i for i in instructions(DOCKER / dockerfile) if i.keyword == keyword][-1]


def test_gateway_image_is_multi_stage_slim_non_root_and_torch_free(instructions) -> None:
    froms = _arguments(instructions, "gateway.Dockerfile", "FROM")
    assert len(froms) == 2 and all(re.match(r"python:3\.11\.\d+-slim-\w+ AS \w+$", f) for f in froms), froms
    installs = [r for r in _arguments(instructions, "gateway.Dockerfile", "RUN") if "[" in r]
    assert installs == ['pip install --no-cache-dir "./[gateway]"'], "the gateway image installs the gateway extra only"
    allowed = (DOCKER / "gateway.Dockerfile.dockerignore").read_text()
    assert "!export/" not in allowed and "!medserve/" not in allowed
    assert not [c for c in _arguments(instructions, "gateway.Dockerfile", "COPY") if "export" in c]
    user = _last(instructions, "gateway.Dockerfile", "USER").arguments
    assert re.fullmatch(r"[1-9]\d*:[1-9]\d*", user), f"USER {user}: numeric (runAsNonRoot can check it) and not root"
    assert "http://127.0.0.1:8080/healthz" in _last(instructions, "gateway.Dockerfile", "HEALTHCHECK").arguments
    assert _last(instructions, "gateway.Dockerfile", "CMD").exec_form() == ["python", "-m", "gateway.server"]
    environment = " ".join(_arguments(instructions, "gateway.Dockerfile", "ENV"))
    assert "MEDSERVE_HOST=0.0.0.0" in environment, "the server listens beyond the container's loopback"


@pytest.mark.parametrize("dockerfile", ["gateway.Dockerfile", "dimse.Dockerfile"])
def test_the_build_context_lets_in_everything_the_image_copies(instructions, dockerfile: str) -> None:
    """A package added to a COPY line (``jobs/``) must be allowed by the dockerignore too, or the build fails."""
    allowed = {line[1:].rstrip("/") for line in (DOCKER / f"{dockerfile}.dockerignore").read_text().splitlines() if line.startswith("!")}
    copied = {source.rstrip("/") for argument in _arguments(instructions, dockerfile, "COPY") if "--from" not in argument for source in argument.split()[:-1]}
    assert "jobs" in copied and copied <= allowed, f"not in the build context: {sorted(copied - allowed)}"


def test_dimse_image_is_slim_non_root_torch_free_and_probed_on_healthz(instructions) -> None:
    froms = _arguments(instructions, "dimse.Dockerfile", "FROM")
    assert len(froms) == 2 and all(re.match(r"python:3\.11\.\d+-slim-\w+ AS \w+$", f) for f in froms), froms
    (install,) = [r for r in _arguments(instructions, "dimse.Dockerfile", "RUN") if "[" in r]
    assert '"./[gateway]"' in install and re.search(r'"pynetdicom==\d+\.\d+\.\d+"', install)
    assert _last(instructions, "dimse.Dockerfile", "USER").arguments == _last(instructions, "gateway.Dockerfile", "USER").arguments, (
        "one UID writes the work directory both share"
    )
    assert "http://127.0.0.1:9112/healthz" in _last(instructions, "dimse.Dockerfile", "HEALTHCHECK").arguments
    assert _last(instructions, "dimse.Dockerfile", "CMD").exec_form() == ["python", "-m", "dimse"]
    environment = " ".join(_arguments(instructions, "dimse.Dockerfile", "ENV"))
    assert {"MEDSERVE_DIMSE_HOST=0.0.0.0", "MEDSERVE_DIMSE_PORT=11112", "MEDSERVE_DIMSE_METRICS_PORT=9112", "MEDSERVE_WORK_DIR=/var/lib/medserve"} <= set(environment.split())


def test_the_gateway_keeps_its_jobs_in_a_folder_it_owns(instructions) -> None:
    environment = " ".join(_arguments(instructions, "gateway.Dockerfile", "ENV"))
    assert "MEDSERVE_WORK_DIR=/var/lib/medserve" in environment
    assert any("/var/lib/medserve" in run and "-o medserve" in run for run in _arguments(instructions, "gateway.Dockerfile", "RUN"))


def test_the_gateway_extra_has_no_torch() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert not [d for d in extras["gateway"] if re.match(r"(torch|monai|onnx|medserve\[)", d)]


def _triton_of_ngc_release(release: str) -> str:
    """NGC release YY.MM of tritonserver -> Triton 2.N (24.10 is 2.51, 23.10 is 2.39, 24.05 is 2.46)."""
    year, month = map(int, release.split("."))
    return f"2.{(year - 20) * 12 + month - 7}"


def test_triton_image_is_the_ngc_release_of_the_development_triton(instructions) -> None:
    (base,) = _arguments(instructions, "triton.Dockerfile", "FROM")
    match = re.fullmatch(r"nvcr\.io/nvidia/tritonserver:(\d\d\.\d\d)-py3(@sha256:[0-9a-f]{64})?", base)
    assert match, base
    client = re.search(r'"tritonclient\[grpc\]==(\d+\.\d+)\.\d+"', (ROOT / "pyproject.toml").read_text()).group(1)
    assert _triton_of_ngc_release(match.group(1)) == client == "2.51"


def test_triton_image_has_what_the_python_backend_runner_imports(instructions) -> None:
    (install,) = [r for r in _arguments(instructions, "triton.Dockerfile", "RUN") if "pip install" in r]
    numpy = re.search(r'"numpy==(\d+)\.\d+\.\d+"', install)
    assert numpy and int(numpy.group(1)) < 2, "the Python-backend stub is built against numpy 1.x"
    assert re.search(r'"onnxruntime-gpu==\d+\.\d+\.\d+"', install)
    assert _last(instructions, "triton.Dockerfile", "USER").arguments == "1000:1000"  # triton-server
    assert "http://127.0.0.1:8000/v2/health/ready" in _last(instructions, "triton.Dockerfile", "HEALTHCHECK").arguments
    command = _last(instructions, "triton.Dockerfile", "CMD").exec_form()
    assert command[0] == "tritonserver"
    assert {"--model-repository=/models", "--model-control-mode=poll", "--repository-poll-secs=30"} <= set(command)


def test_export_image_builds_engines_for_the_tensorrt_of_the_triton_image(instructions) -> None:
    (base,) = _arguments(instructions, "export.Dockerfile", "FROM")
    (triton,) = _arguments(instructions, "triton.Dockerfile", "FROM")
    assert re.fullmatch(r"nvcr\.io/nvidia/pytorch:\d\d\.\d\d-py3(@sha256:[0-9a-f]{64})?", base), base
    release = lambda reference: re.search(r":(\d\d\.\d\d)-py3", reference).group(1)  # noqa: E731
    assert release(base) == release(triton), "a TensorRT engine loads only in the TensorRT it was built with"
    assert [r for r in _arguments(instructions, "export.Dockerfile", "RUN") if '"./[export]"' in r]
    assert _last(instructions, "export.Dockerfile", "ENTRYPOINT").exec_form() == ["medserve", "export"]
    assert re.fullmatch(r"[1-9]\d*:[1-9]\d*", _last(instructions, "export.Dockerfile", "USER").arguments)


@pytest.mark.parametrize(
    ("dockerfile", "entry"), [("gateway.Dockerfile", "gateway.main"), ("export.Dockerfile", "export.pipeline"), ("dimse.Dockerfile", "dimse.__main__")]
)
def test_each_image_copies_every_package_of_the_repository_its_entry_imports(instructions, dockerfile: str, entry: str) -> None:
    """A package added to the product (e.g. ``contract``) must reach the images that import it."""
    import subprocess
    import sys

    code = (
        f"import importlib, sys; importlib.import_module({entry!r}); "
        "print(' '.join(sorted({m.split('.')[0] for m, module in list(sys.modules.items()) "
        f"if getattr(module, '__file__', None) and module.__file__.startswith({str(ROOT) + '/'!r}) "
        f"and not module.__file__.startswith({str(ROOT / '.venv') + '/'!r})}})))"
    )
    imported = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/").stdout.split())
    copied = {argument.split()[0].rstrip("/") for argument in _arguments(instructions, dockerfile, "COPY") if "--from" not in argument}
    assert imported and imported <= copied, f"{dockerfile} lacks {sorted(imported - copied)}"
