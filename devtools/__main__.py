"""``python -m devtools``: the development commands of a medserve checkout.

    python -m devtools run              # Triton + gateway on a repository as it is, supervised (make run);
                                        # the demo zoo exported only into the default one or with --demo-models
    python -m devtools demo-repository  # export the demo zoo where missing or stale
    python -m devtools train NAME       # retrain a demo zoo model from its seed
    python -m devtools bench            # the serving benchmark (benchmarks/serving/)
    python -m devtools demo-series DIR  # a 24-slice chest CT series (the zoo's phantom) to send a PACS or the receiver

Development tooling, never imported by the product packages (``contract``, ``preprocessing``,
``export``, ``gateway``, ``medserve``): synthetic phantoms and DICOM writers, test-data
locators, the demo zoo (trainers, weights, specs), the local tritonserver launcher and the
process supervisor of ``make run``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

#: The checkout this package lives in (tooling runs from a checkout, never from site-packages).
PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _train(args: argparse.Namespace) -> int:
    from devtools.zoo.train import train_zoo_model

    print(train_zoo_model(args.name, seed=args.seed))
    return 0


def _demo_repository(args: argparse.Namespace) -> int:
    from export.errors import ExportError
    from export.pipeline import ExportOptions
    from devtools.zoo.repository import ensure_demo_repository

    try:
        exported = ensure_demo_repository(Path(args.output), force=args.force, options=ExportOptions(progress=not args.no_progress))
    except ExportError as exc:
        print(f"demo repository failed: {exc}", file=sys.stderr)
        return 2
    print(f"exported: {', '.join(exported) or 'nothing (all present and current)'}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from .run import run
    from .tritonserver import TritonPorts

    return run(Path(args.repository), Path(args.work_dir), args.host, args.port, TritonPorts(args.triton_http_port, args.triton_grpc_port, args.triton_metrics_port),
               demo_models=args.demo_models, dimse_port=args.dimse_port)


def _demo_series(args: argparse.Namespace) -> int:
    from .testdata import chest_ct_series, write_series

    paths = write_series(chest_ct_series(seed=args.seed), Path(args.output))
    print(f"{len(paths)} CT instances of one series in {args.output}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from benchmarks.serving import BenchOptions, run_bench

    def numbers(text: str) -> tuple[int, ...]:
        return tuple(int(x) for x in text.split(",") if x)

    defaults = BenchOptions()
    max_requests = dict.fromkeys(defaults.max_requests, args.max_requests) if args.max_requests else defaults.max_requests
    seconds = dict.fromkeys(defaults.seconds, args.seconds) if args.seconds else defaults.seconds
    options = BenchOptions(
        models=tuple(args.models.split(",")),
        concurrency=numbers(args.concurrency),
        variants=tuple(args.variants.split(",")),
        seconds=seconds,
        max_requests=max_requests,
        repository=Path(args.repository),
        work_dir=Path(args.work_dir) if args.work_dir else None,
        gateway_env=dict(item.split("=", 1) for item in args.gateway_env),
        gateway_workers=args.gateway_workers,
        wait_quiet_s=args.wait_quiet,
        markdown=None if args.no_markdown else Path(args.markdown),
    )
    report = run_bench(options)
    for target in report["targets"]:
        print(f"{'met' if target['met'] else 'NOT MET':>8}  {target['target']}: {target['measured']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a demo zoo model from its seed")
    train.add_argument("name")
    train.add_argument("--seed", type=int, default=0)
    train.set_defaults(handler=_train)

    demo = commands.add_parser("demo-repository", help="export the demo zoo into a model repository where missing or stale")
    demo.add_argument("--output", default=str(PROJECT_ROOT / "model_repository"))
    demo.add_argument("--force", action="store_true", help="re-export models that are present and current")
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")
    demo.set_defaults(handler=_demo_repository)

    run = commands.add_parser("run", help="serve a model repository as it is: start Triton and the gateway, supervised")
    run.add_argument("--repository", default=str(PROJECT_ROOT / "model_repository"),
                     help="served as it is; the demo zoo is exported only into the default (%(default)s)")
    run.add_argument("--demo-models", action=argparse.BooleanOptionalAction, default=None,
                     help="export the demo zoo into the repository where missing or stale "
                          "(default: only into the default repository); --no-demo-models leaves even that one as it is")
    run.add_argument("--work-dir", default=str(PROJECT_ROOT / "build" / "run"))
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=8080)
    run.add_argument("--triton-http-port", type=int, default=8000)
    run.add_argument("--triton-grpc-port", type=int, default=8001)
    run.add_argument("--triton-metrics-port", type=int, default=8002)
    run.add_argument("--dimse-port", type=int, default=int(os.environ.get("MEDSERVE_DIMSE_PORT", "11112")),
                     help="the DIMSE receiver's port (default: MEDSERVE_DIMSE_PORT, else %(default)s)")
    run.set_defaults(handler=_run)

    series = commands.add_parser("demo-series", help="write a 24-slice chest CT series (the zoo's phantom, 96x96, 2 mm) as DICOM files")
    series.add_argument("output", help="folder to write <SOP Instance UID>.dcm into")
    series.add_argument("--seed", type=int, default=0, help="the same seed gives the same pixels (new UIDs each time)")
    series.set_defaults(handler=_demo_series)

    bench = commands.add_parser("bench", help="medserve vs the naive baseline under closed-loop load, side by side (docs/benchmarks.md)")
    bench.add_argument("--models", default="ct_nodule_classifier,ct_nodule_segmenter_3d")
    bench.add_argument("--concurrency", default="1,4,16,32", help="comma-separated client counts")
    bench.add_argument("--variants", default="a,b,c,d,e", help="a baseline, b no batching, c dynamic batching, d INT8, e INT8 behind 2 gateways (2D only)")
    bench.add_argument("--seconds", type=float, help="measurement window per variant and concurrency (default 5 s 2D, 8 s 3D)")
    bench.add_argument("--max-requests", type=int, help="most requests per measurement (default 1000 2D, 240 3D)")
    bench.add_argument("--repository", default=str(PROJECT_ROOT / "model_repository"))
    bench.add_argument("--work-dir", help="keep server logs and repository copies here (default: a temporary folder)")
    bench.add_argument("--gateway-env", action="append", default=[], metavar="MEDSERVE_X=VALUE", help="extra gateway setting")
    bench.add_argument("--gateway-workers", type=int, default=1, help="uvicorn workers of the gateway")
    bench.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS", help="first wait up to this long for a 1-minute load average below 1.5")
    bench.add_argument("--markdown", default=str(PROJECT_ROOT / "docs" / "benchmarks.md"))
    bench.add_argument("--no-markdown", action="store_true", help="write the JSON result only")
    bench.set_defaults(handler=_bench)

    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
