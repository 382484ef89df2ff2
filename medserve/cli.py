"""The ``medserve`` command: what the installed product does — export a trained model into a
Triton model repository, serve the gateway, receive DICOM over DIMSE. Heavy dependencies (torch) load only for the
command that needs them. Development commands (the local stack, the demo zoo, benchmarks)
are ``python -m devtools`` in a checkout.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _export(args: argparse.Namespace) -> int:
    from export.errors import ExportError
    from export.pipeline import ExportOptions, export_model
    from export.spec import load_spec, parse_precisions

    try:
        precisions = parse_precisions(args.precision) if args.precision else None
        options = ExportOptions(precisions=precisions, benchmark_threads=args.benchmark_threads, progress=not args.no_progress)
        # The chosen precisions replace the spec's before it is validated: `--precision fp32`
        # loads a spec listing int8 without calibration data.
        overrides = {"precisions": [p.value for p in precisions]} if precisions else None
        result = export_model(load_spec(args.spec, overrides), Path(args.output), options=options)
    except ExportError as exc:
        print(f"export failed: {exc}", file=sys.stderr)
        return 2
    for variant in result.report.variants:
        where = variant.file or variant.reason
        print(f"{variant.precision:>5} {variant.runtime:<11} {variant.status.value:<8} {where}")
    print(f"report: {result.model_dir / 'export_report.md'}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from gateway.server import main

    main()
    return 0


def _dimse(args: argparse.Namespace) -> int:
    from dimse.__main__ import main

    main()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="medserve", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    export = commands.add_parser("export", help="export a trained PyTorch model into a Triton model repository")
    export.add_argument("spec", help="export spec (YAML)")
    export.add_argument("--output", default="model_repository", help="Triton model repository")
    export.add_argument(
        "--precision",
        help="comma-separated precisions, e.g. fp32,int8; replaces the spec's list before the spec is validated (fp32 always)",
    )
    export.add_argument("--benchmark-threads", type=int, default=1, help="CPU threads for the report's timings")
    export.add_argument("--no-progress", action="store_true", help="no progress bars")
    export.set_defaults(handler=_export)

    serve = commands.add_parser("serve", help="run the gateway only (settings from MEDSERVE_* variables)")
    serve.set_defaults(handler=_serve)

    dimse = commands.add_parser("dimse", help="run the DIMSE receiver only: C-STORE / C-ECHO SCP (settings from MEDSERVE_* variables)")
    dimse.set_defaults(handler=_dimse)

    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
