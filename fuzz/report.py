"""The campaign as Markdown (docs/reliability.md): status counts, 4xx codes, per-family
results, gateway memory, and every failing case with its id and the gateway's log lines."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter, defaultdict
from pathlib import Path

from .families import FAMILIES
from .runner import CampaignResult

KINDS = ("2xx", "4xx", "5xx", "dropped", "timeout", "other")
MAX_LISTED_FAILURES = 150


def _log_lines(logs: list[Path]) -> dict[str, list[str]]:
    """Gateway log lines by request id (the gateway logs JSON lines carrying ``request_id``)."""
    by_request: dict[str, list[str]] = defaultdict(list)
    for log in logs:
        try:
            lines = log.read_text(errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("request_id"):
                by_request[record["request_id"]].append(line[:400])
    return by_request


def _mib(kib: int) -> str:
    return f"{kib / 1024:.0f}"


def render(result: CampaignResult, *, seed: int, concurrency: int, timeout_s: float, logs: list[Path]) -> str:
    counts = result.counts()
    total = len(result.outcomes)
    out = [
        "# Reliability: the fuzz campaign",
        "",
        "Written by `python -m fuzz` (`make fuzz`); the bounded campaign of `make test` is",
        "tests/reliability/test_fuzz.py. The fuzzer (`fuzz/`) mutates real DICOM test files (pydicom,",
        "pydicom-data, nibabel, pynetdicom) and the HTTP envelopes around them, and sends each case to",
        "a live gateway (`python -m gateway.server`) over a real tritonserver. A case **fails** on a",
        "5xx, a dropped connection, a timeout, a 4xx that is not the JSON error body, or a gateway",
        "crash. Reproduce one case with `python -m fuzz --case <id>` (`--show` prints its request).",
        "",
        f"Run {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC: {total} cases, seed {seed}, {len(FAMILIES)} families,",
        f"concurrency {concurrency}, deadline {timeout_s:.0f} s per request, {result.elapsed_s:.0f} s in all.",
        "",
        "## Status counts",
        "",
        "| class | cases |",
        "|---|---:|",
        *[f"| {kind} | {counts.get(kind, 0)} |" for kind in KINDS],
        f"| gateway crashes | {len(result.crashes)} |",
        f"| not sent (gateway gone) | {result.not_sent} |",
        f"| **failing cases** | **{len(result.failures)}** |",
        "",
        "## Gateway memory (VmRSS of the gateway and its child processes)",
        "",
        "| before | peak (sampled every 0.25 s) | after |",
        "|---:|---:|---:|",
        f"| {_mib(result.rss_before_kib)} MiB | {_mib(result.rss_peak_kib)} MiB | {_mib(result.rss_after_kib)} MiB |",
        "",
        f"The gateway was {'alive' if result.gateway_alive else '**dead**'} at the end.",
        "",
        "## 4xx answers by code",
        "",
        "| status | code | cases |",
        "|---:|---|---:|",
        *[
            f"| {status} | {f'`{code}`' if code else 'STOW-RS answer (Failed SOP Sequence, DICOM JSON)'} | {n} |"
            for (status, code), n in sorted(result.codes().items(), key=lambda kv: (kv[0][0], str(kv[0][1])))
        ],
        "",
        "## By family",
        "",
        "| family | what it mutates | cases | 2xx | 4xx | 5xx | dropped | timeout | failing |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    by_family: dict[str, Counter] = defaultdict(Counter)
    for outcome in result.outcomes:
        by_family[outcome.family][outcome.kind] += 1
        by_family[outcome.family]["cases"] += 1
        by_family[outcome.family]["failing"] += outcome.failing
    for name in sorted(FAMILIES):
        c = by_family[name]
        what = (FAMILIES[name].__doc__ or "").strip().splitlines()[0].rstrip(",")
        out.append(f"| `{name}` | {what} | {c['cases']} | {c['2xx']} | {c['4xx']} | {c['5xx']} | {c['dropped']} | {c['timeout']} | {c['failing']} |")

    failures = result.failures
    out += ["", "## Failing cases", ""]
    if not failures and not result.crashes:
        out.append("None.")
    groups: dict[tuple[str, str], list] = defaultdict(list)
    for outcome in failures:
        groups[(outcome.family, outcome.problem or "")].append(outcome)
    if groups:
        out += ["| family | problem | cases | first ids |", "|---|---|---:|---|"]
        for (name, problem), members in sorted(groups.items(), key=lambda kv: -len(kv[1])):
            ids = ", ".join(f"`{m.case_id}`" for m in members[:3])
            out.append(f"| `{name}` | {problem} | {len(members)} | {ids} |")
    if result.crashes:
        out += ["", "### Gateway crashes", ""]
        for crash in result.crashes:
            out += [f"- exit {crash.returncode}; in flight: {', '.join(f'`{c}`' for c in crash.in_flight)}", "", "```", crash.log_tail, "```", ""]
    if failures:
        lines = _log_lines(logs)
        out += ["", f"### Each failing case (first {MAX_LISTED_FAILURES})", ""]
        for outcome in failures[:MAX_LISTED_FAILURES]:
            out.append(f"- `{outcome.case_id}`: **{outcome.problem}** — {outcome.summary}")
            for line in lines.get(outcome.request_id or "", [])[-3:]:
                out.append(f"  - log: `{line.replace('`', chr(39))}`")
    return "\n".join(out) + "\n"


def write_report(path: Path, result: CampaignResult, **details) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(result, **details))
