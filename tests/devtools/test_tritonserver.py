"""Locating and launching the tritonserver inside the nvidia-pytriton wheel."""

from __future__ import annotations

import sys
import sysconfig
from pathlib import Path

import pytest

from devtools.tritonserver import TritonInstall, TritonPorts, TritonServer, TritonStartFailed, server_environment


def test_install_is_found_with_a_stub_for_this_python() -> None:
    install = TritonInstall.locate()
    assert install.binary.name == "tritonserver"
    assert install.stub.parent.name == f"{sys.version_info.major}.{sys.version_info.minor}"


def test_backend_directory_holds_python_backend_and_stub(tmp_path: Path) -> None:
    backends = TritonInstall.locate().backend_directory(tmp_path)
    names = {p.name for p in (backends / "python").iterdir()}
    assert {"libtriton_python.so", "triton_python_backend_utils.py", "triton_python_backend_stub"} <= names


def test_environment_lets_the_stub_find_libpython_and_our_packages() -> None:
    env = server_environment(TritonInstall.locate())
    assert sysconfig.get_config_var("LIBDIR") in env["LD_LIBRARY_PATH"].split(":")
    assert sysconfig.get_paths()["purelib"] in env["PYTHONPATH"].split(":")


def test_poll_mode_is_on_by_default_and_off_on_request(tmp_path: Path) -> None:
    install = TritonInstall.locate()
    polling = TritonServer(tmp_path, tmp_path, poll_seconds=5).command(install)
    assert "--model-control-mode=poll" in polling and "--repository-poll-secs=5" in polling
    static = TritonServer(tmp_path, tmp_path, poll_seconds=0).command(install)
    assert not any(arg.startswith("--model-control-mode") for arg in static)


def test_free_ports_are_distinct() -> None:
    ports = TritonPorts.free()
    assert len({ports.http, ports.grpc, ports.metrics}) == 3


def test_a_broken_repository_fails_with_the_log(tmp_path: Path) -> None:
    repository = tmp_path / "repo"
    (repository / "broken" / "1").mkdir(parents=True)
    (repository / "broken" / "config.pbtxt").write_text('name: "broken"\nbackend: "python"\nthis is not protobuf text\n')
    server = TritonServer(repository, tmp_path / "work", ports=TritonPorts.free(), poll_seconds=0,
                          extra_args=("--exit-on-error=true", "--strict-model-config=false"))
    with pytest.raises(TritonStartFailed, match="broken"):
        server.start(ready_timeout_s=60)
    server.stop()
