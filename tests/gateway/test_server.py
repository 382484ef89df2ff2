"""The launcher prepares prometheus-client's multiprocess directory for several workers."""

from __future__ import annotations

import os

from gateway.server import MULTIPROCESS_ENV, prepare_metrics_directory


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
