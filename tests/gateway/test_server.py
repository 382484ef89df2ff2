"""The launcher prepares prometheus-client's multiprocess directory for several workers and
binds one SO_REUSEPORT socket per worker."""

from __future__ import annotations

import os
import socket

from gateway.server import MULTIPROCESS_ENV, prepare_metrics_directory, reuse_port_sockets


def test_one_worker_needs_no_metrics_directory(monkeypatch) -> None:
    monkeypatch.setenv(MULTIPROCESS_ENV, "")  # unset, and restored after the test
    assert prepare_metrics_directory(1) is None
    assert os.environ[MULTIPROCESS_ENV] == ""


def test_several_workers_get_an_empty_directory_named_in_the_environment(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv(MULTIPROCESS_ENV, str(tmp_path / "metrics"))
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "counter_123.db").write_bytes(b"counts of a previous run")
    directory = prepare_metrics_directory(4)
    assert directory == tmp_path / "metrics"
    assert list(directory.iterdir()) == []  # old counts would add to the new ones
    assert os.environ[MULTIPROCESS_ENV] == str(directory)


def test_several_workers_without_a_configured_directory_get_a_fresh_one(monkeypatch) -> None:
    monkeypatch.setenv(MULTIPROCESS_ENV, "")  # unset, and restored after the test
    directory = prepare_metrics_directory(2)
    assert directory is not None and directory.is_dir() and not any(directory.iterdir())
    assert os.environ[MULTIPROCESS_ENV] == str(directory)


def test_each_worker_gets_its_own_listening_socket_on_one_port() -> None:
    sockets = reuse_port_sockets("127.0.0.1", 0, 3, backlog=16)
    try:
        ports = {sock.getsockname()[1] for sock in sockets}
        assert len(sockets) == 3 and len(ports) == 1 and ports != {0}  # port 0: a free one, shared
        assert len({sock.fileno() for sock in sockets}) == 3
        assert all(sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) for sock in sockets)
        assert all(sock.get_inheritable() for sock in sockets)
        with socket.create_connection(("127.0.0.1", ports.pop()), timeout=5):
            pass  # the kernel accepts on one of them
    finally:
        for sock in sockets:
            sock.close()
