"""The model repositories the bench serves: copies of the demo repository, one per Triton
deployment, with or without dynamic batching, always with this tree's runner.

Copies, because variant (b) needs configs without batching and every variant must run the
runner of the working tree (so the bench measures the code as it is now), while the source
repository stays untouched.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Iterable, Sequence

from export.triton.config import parse, render
from export.triton.model_dir import RUNNER_SOURCE
from export.variants import model_names


def no_batching_config(config_text: str) -> str:
    """A rendered ``config.pbtxt`` rendered again without its ``dynamic_batching`` block, by
    export's own renderer (:func:`export.triton.config.render`)."""
    return render(parse(config_text), dynamic_batching=False)


def bench_repository(source: Path, destination: Path, models: Iterable[str], dynamic_batching: bool = True) -> Path:
    """A temporary model repository holding copies of ``models`` from ``source``; without
    ``dynamic_batching`` each config is rendered again without it. Every version's
    ``model.py`` is the runner of this source tree (``export/triton/onnx_runner.py``, what
    ``medserve export`` writes), so the bench measures the code as it is now."""
    shutil.rmtree(destination, ignore_errors=True)  # a kept work dir of an earlier run
    destination.mkdir(parents=True)
    runner = RUNNER_SOURCE.read_bytes()
    for name in models:
        target = destination / name
        shutil.copytree(source / name, target, ignore=shutil.ignore_patterns("__pycache__", "configs"))
        if not dynamic_batching:
            config = target / "config.pbtxt"
            config.write_text(no_batching_config(config.read_text()))
        for model_py in target.glob("[0-9]*/model.py"):
            model_py.write_bytes(runner)
    return destination


def served_models(repository: Path, models: Sequence[str]) -> dict[str, list[str]]:
    """``{model: [the Triton models of its export variants present in repository]}``, the
    default (FP32) model first; FileNotFoundError when a model is not exported at all."""
    missing = [m for m in models if not (repository / m / "config.pbtxt").exists()]
    if missing:
        raise FileNotFoundError(f"{', '.join(missing)} not in {repository}; run `make model-repository` first")
    return {m: [name for name in model_names(m) if (repository / name / "config.pbtxt").exists()] for m in models}


def export_digest(model_dir: Path) -> str | None:
    """The export's source digest (spec + weights), so a result names the exact model it ran."""
    try:
        return json.loads((model_dir / "export_report.json").read_text())["source_digest"]
    except (OSError, ValueError, KeyError):
        return None
