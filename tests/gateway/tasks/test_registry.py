"""Tasks are registry entries: every task of the contract has a runner; unknown ones are 501."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from gateway.errors import TaskUnsupported
from gateway.tasks import registered_tasks, runner_for
from gateway.tasks.classification import classify
from gateway.tasks.multi_input import classify_fusion
from gateway.tasks.registry import register
from gateway.tasks.segmentation import segment_slices, segment_volume


def test_every_task_has_its_runner() -> None:
    assert registered_tasks() == ["classification", "multi-input", "segmentation-2d", "segmentation-3d"]
    runners = {task: runner_for(SimpleNamespace(name="m", task=task)) for task in registered_tasks()}
    assert runners == {
        "classification": classify,
        "multi-input": classify_fusion,
        "segmentation-2d": segment_slices,
        "segmentation-3d": segment_volume,
    }


def test_an_unknown_task_is_unsupported() -> None:
    with pytest.raises(TaskUnsupported, match="'detection'"):
        runner_for(SimpleNamespace(name="m", task="detection"))


def test_a_task_registers_once() -> None:
    with pytest.raises(ValueError, match="already has a runner"):
        register("classification")(classify)
