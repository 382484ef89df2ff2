"""The serving bench (``python -m devtools bench``): medserve against the naive baseline,
side by side, in one run.

Every variant answers the same real DICOM over HTTP on 127.0.0.1, driven by one closed-loop
load generator (``concurrency`` clients, each sending its next request when the last one was
answered), with a bounded request count and time per measurement:

- ``a`` **baseline**: FastAPI + pydicom + the PyTorch model eagerly in-process per request
  (:mod:`benchmarks.baseline`; MONAI ``sliding_window_inference`` for 3D), one uvicorn worker;
- ``b`` **medserve, no batching**: gateway + Triton over a copy of the repository whose
  ``config.pbtxt`` has no ``dynamic_batching`` block;
- ``c`` **medserve**: gateway + Triton with dynamic batching (FP32), as deployed;
- ``d`` **medserve INT8**: the same server, the ``<model>_int8`` variant;
- ``e`` **medserve INT8, two gateways**: (d) behind two gateway processes sharing that
  tritonserver (how the gateway scales: more replicas), for the 2D classifier, whose single
  gateway process is the bottleneck.

All servers are up during the whole run, each in its own processes on free ports, and the
variants take turns per (model, concurrency), so that a noisy neighbour falls on all of them
alike. Around each measurement the gateway's ``medserve_stage_duration_seconds`` histograms
(``/metrics``) and Triton's per-model statistics (``/v2/models/<m>/stats``) are read, so the
time outside model compute is visible. Results: ``benchmarks/results/<UTC>.json`` and the
generated part of ``docs/benchmarks.md``.

The package, by concern: :mod:`.variants` (models, concurrencies, variants), :mod:`.options`
(paths, ``BenchOptions``), :mod:`.inputs` (DICOM payloads), :mod:`.load` (the closed-loop
load generator), :mod:`.servers` and :mod:`.stack` (the servers of a run),
:mod:`.repositories` (the repository copies Triton serves), :mod:`.stages` (gateway and
Triton counters), :mod:`.machine` (CPU accounting, the machine), :mod:`.measure` (one cell),
:mod:`.targets`, :mod:`.report` (JSON and Markdown) and :mod:`.run` (``run_bench``).
"""

from .load import Payload, closed_loop
from .machine import wait_until_quiet
from .options import MARKDOWN, PROJECT_ROOT, RESULTS_DIR, BenchOptions
from .run import run_bench

__all__ = ["MARKDOWN", "PROJECT_ROOT", "RESULTS_DIR", "BenchOptions", "Payload", "closed_loop", "run_bench", "wait_until_quiet"]
