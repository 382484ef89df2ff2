"""The scaling bench (``python -m benchmarks.scaling``, issue 17): does the 2D throughput grow
with gateway workers and replicas, and what would a 16-core GPU host serve?

One real tritonserver serves the demo classifier ``ct_nodule_classifier`` (FP32 and its INT8
variant, dynamic batching, as deployed); on it three gateway configurations are up together:
``1w`` one gateway with ``MEDSERVE_WORKERS=1``, ``2w`` one with ``MEDSERVE_WORKERS=2``, ``2r``
two single-worker replicas behind client-side round robin (as the serving bench's variant e).
Closed-loop load of real CT slices at concurrency 16 and 32, the configurations taking turns
per (precision, concurrency) in alternating order, so that a noisy neighbour falls on all
alike. Per cell: throughput, p50/p99 and CPU ms per request of each process group (gateway,
triton, the load generator, other) from /proc, the serving bench's own measurement
(:func:`benchmarks.serving.measure.measure_cell`); the ratio to ``1w``; and, from the CPU per
request, the projection for a larger host (:mod:`.projection`).

Writes ``benchmarks/results/scaling-<UTC>.json`` and the generated block of the section
"Scaling with gateway workers" of ``docs/benchmarks.md``.
"""
