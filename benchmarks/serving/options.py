"""Where the serving bench reads and writes, and the options of one run (``BenchOptions``).

Paths are the checkout's: the bench is development tooling and runs from a checkout, never
from site-packages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .variants import CLASSIFIER, CONCURRENCY, MODELS, SEGMENTER_3D

PROJECT_ROOT = Path(__file__).resolve().parents[2]
RESULTS_DIR = PROJECT_ROOT / "benchmarks" / "results"
MARKDOWN = PROJECT_ROOT / "docs" / "benchmarks.md"


@dataclass(frozen=True)
class BenchOptions:
    """What one run measures: models × concurrencies × variants, each measurement bounded by
    ``seconds`` (per model, s) and ``max_requests`` (per model), whichever comes first."""

    models: tuple[str, ...] = MODELS
    concurrency: tuple[int, ...] = CONCURRENCY
    variants: tuple[str, ...] = ("a", "b", "c", "d", "e")
    replica_models: tuple[str, ...] = (CLASSIFIER,)  # variant e: where one gateway process is the bottleneck
    seconds: dict[str, float] = field(default_factory=lambda: {CLASSIFIER: 5.0, SEGMENTER_3D: 8.0})
    max_requests: dict[str, int] = field(default_factory=lambda: {CLASSIFIER: 1000, SEGMENTER_3D: 240})
    warmup_seconds: float = 1.0  # before every measurement: at least one request per client
    repository: Path = PROJECT_ROOT / "model_repository"
    work_dir: Path | None = None
    gateway_env: dict[str, str] = field(default_factory=dict)
    gateway_workers: int = 1
    wait_quiet_s: float = 0.0
    results_dir: Path = RESULTS_DIR
    markdown: Path | None = MARKDOWN
    log: Callable[[str], None] = print
