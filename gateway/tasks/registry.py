"""Tasks (the contract's :class:`contract.Task`): one runner each, looked up, never branched on.

A runner is an async callable from one :class:`InferenceContext` to a result. A new task
(e.g. a cascade that runs a detector, then a classifier on what it found) is a module in
:mod:`gateway.tasks` that decorates its runner with :func:`register`, and a line in the
package's ``__init__`` that imports it; a cascade calls :func:`runner_for` for its stages.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from contract import ModelCard, Task

from ..errors import TaskUnsupported
from .context import InferenceContext, TaskResult


class TaskRunner(Protocol):
    async def __call__(self, context: InferenceContext) -> TaskResult: ...


_RUNNERS: dict[Task, TaskRunner] = {}


def register(task: Task) -> Callable[[TaskRunner], TaskRunner]:
    """Register the decorated runner for the contract's ``task``."""

    def add(runner: TaskRunner) -> TaskRunner:
        if task in _RUNNERS:
            raise ValueError(f"task {task!r} already has a runner")
        _RUNNERS[task] = runner
        return runner

    return add


def registered_tasks() -> list[Task]:
    return sorted(_RUNNERS)


def runner_for(card: ModelCard) -> TaskRunner:
    """The runner of ``card``'s task, or :class:`TaskUnsupported` (501)."""
    runner = _RUNNERS.get(card.task)
    if runner is None:
        raise TaskUnsupported(f"model {card.name!r} has task {card.task!r}, which this gateway version does not serve")
    return runner
