"""``python -m benchmarks.realsize``: see :mod:`benchmarks.realsize`."""

from __future__ import annotations

import argparse
from pathlib import Path

from .run import RealsizeOptions, run_realsize


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(",") if v)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.realsize", description="real-size models: served vs the in-process script vs PyTorch eager")
    parser.add_argument("--concurrency-2d", type=_ints, default=(1, 4, 16))
    parser.add_argument("--concurrency-3d", type=_ints, default=(1,))
    parser.add_argument("--requests-3d", type=int, default=2, help="requests per 3D measurement (each is a whole series)")
    parser.add_argument("--concurrency-cascade", type=_ints, default=(1,), help="concurrencies of (c), the deepbet cascade")
    parser.add_argument("--requests-cascade", type=int, default=3, help="requests per (c) measurement")
    parser.add_argument("--seconds-2d", type=float, default=6.0)
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--variants", default="served,served-zip,script,script-zip,eager")
    parser.add_argument("--workloads", default="a,b,c", help="which of (a) 2D classifier, (b) 3D series, (c) deepbet on an enhanced MR")
    parser.add_argument("--work-dir", type=Path)
    parser.add_argument("--no-markdown", action="store_true", help="write the JSON result only")
    args = parser.parse_args()
    options = RealsizeOptions(
        concurrency_2d=args.concurrency_2d, concurrency_3d=args.concurrency_3d, max_requests_3d=args.requests_3d,
        concurrency_cascade=args.concurrency_cascade, max_requests_cascade=args.requests_cascade,
        workloads=tuple(args.workloads.split(",")), seconds_2d=args.seconds_2d, slices=args.slices, size=args.size, variants=tuple(args.variants.split(",")),
        work_dir=args.work_dir, **({"markdown": None} if args.no_markdown else {}),
    )
    run_realsize(options)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
