"""``python -m fuzz``: run a campaign against a fresh stack (or ``--url``-less reproduction of
one case with ``--case``) and write the report.

    python -m fuzz --cases 10000 --report docs/reliability.md      # make fuzz
    python -m fuzz --case photometric_swap:0:17 --show             # what one case sends
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from .cases import campaign, case_from_id
from .families import FAMILIES
from .report import write_report
from .runner import run_campaign, warm_up

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=10000, help="number of cases (families taken in turn)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--family", action="append", choices=sorted(FAMILIES), help="only these families (repeatable)")
    parser.add_argument("--case", action="append", help="only these case ids (family:seed:index; repeatable)")
    parser.add_argument("--show", action="store_true", help="print the requests of --case and exit")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--timeout-s", type=float, default=60.0, help="deadline of one request")
    parser.add_argument("--report", type=Path, help="write the Markdown report here")
    parser.add_argument("--work", type=Path, default=PROJECT_ROOT / "build" / "fuzz", help="logs of Triton and the gateway")
    parser.add_argument("--repository", type=Path, default=PROJECT_ROOT / "model_repository")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)  # pydicom complains about every mutation it parses

    if args.show:
        for case_id in args.case or []:
            request = case_from_id(case_id).request
            print(case_id, request.summary())
            print(request.headers[:8], request.body[:200])
        return 0

    from .stack import fuzz_stack, start_gateway

    cases = (case_from_id(c) for c in args.case) if args.case else campaign(args.cases, args.seed, args.family)
    total = len(args.case) if args.case else args.cases
    with fuzz_stack(args.repository, args.work / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())) as (triton, gateways):

        def restart():
            gateways.append(start_gateway(triton.grpc_url, gateways[0].log.parent))
            return gateways[-1]

        def progress(done: int, result) -> None:
            if done % 250 == 0 or done == total:
                counts = result.counts()
                print(f"{done}/{total} {dict(counts)} failing={len(result.failures)} crashes={len(result.crashes)}", file=sys.stderr, flush=True)

        warm_up(gateways[0])
        result = run_campaign(cases, gateways[0], concurrency=args.concurrency, timeout_s=args.timeout_s, restart=restart, progress=progress)
        logs = [g.log for g in gateways]
    print(f"{len(result.outcomes)} cases in {result.elapsed_s:.0f} s: {dict(result.counts())}; failing {len(result.failures)}; crashes {len(result.crashes)}")
    print(f"gateway RSS before/peak/after: {result.rss_before_kib // 1024} / {result.rss_peak_kib // 1024} / {result.rss_after_kib // 1024} MiB")
    if args.report:
        write_report(args.report, result, seed=args.seed, concurrency=args.concurrency, timeout_s=args.timeout_s, logs=logs)
        print(f"report: {args.report}")
    return 1 if result.failures or result.crashes else 0


if __name__ == "__main__":
    sys.exit(main())
