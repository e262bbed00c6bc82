"""`make bench`: fleetlog measured against the contract §5 targets, with rsyslog doing the same job
in the same run. Prints one table (figure | measured | target | pass/fail) and writes it to
docs/benchmarks.md.

    python bench/run.py [--lines N] [--only NAME,...] [--skip NAME,...] [--no-write]

Each figure lives in its own module under bench/ with a function `(ctx) -> list[Row]`; SECTIONS
lists them in the order they run. A section that fails prints its error as a row and the run
goes on, so one broken figure never hides the others.
"""

from __future__ import annotations

import argparse
import importlib
import pathlib
import shutil
import sys
import tempfile
import time
import traceback

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from bench.common import ROOT, BenchContext, Row, machine_description, render_table, today

# (name, module, function): function(ctx) returns the rows of that figure.
SECTIONS: list[tuple[str, str, str]] = [
    ("source-read", "bench.source_read", "run"),
    ("e2e", "bench.e2e", "run"),
    ("signing", "bench.signing", "run"),
    ("rsyslog", "bench.rsyslog", "run"),
    ("syslog-tcp", "bench.syslog_receiver", "run"),
    ("otlp", "bench.otlp_receiver", "run"),
    ("collector-alone", "bench.collector_alone", "run"),
    ("e2e-4-agents", "bench.e2e", "run_four_agents"),
    ("e2e-postgres", "bench.postgres", "run"),
    ("e2e-restart", "bench.e2e", "run_with_restart"),
    ("spool-rss", "bench.spool_rss", "run"),
    ("latency", "bench.latency", "run"),
    ("search", "bench.search", "run"),
    ("search-large", "bench.search_large", "run"),
    ("web", "bench.web", "run"),
    ("purge", "bench.purge", "run"),
    ("insert-rate", "bench.insert_rate", "run"),
    ("forward", "bench.forward", "run"),
    ("storage", "bench.storage", "run"),
    ("alerting", "bench.alerting", "run"),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000, help="end-to-end workload size")
    parser.add_argument("--search-events", type=int, default=10_000_000,
                        help="events in the search store (built once, kept under var/bench-search/)")
    parser.add_argument("--search-events-large", type=int, default=100_000_000,
                        help="events in the second search store (section search-large; built once and "
                             "resumed when interrupted, kept under var/bench-search/)")
    parser.add_argument("--purge-events", type=int, default=1_000_000,
                        help="expired events the retention purge deletes while ingest runs")
    parser.add_argument("--insert-sizes", default="0,10000000,50000000",
                        help="stored events before each insert-rate measurement (comma-separated)")
    parser.add_argument("--only", default="", help="comma-separated section names to run")
    parser.add_argument("--skip", default="", help="comma-separated section names to leave out")
    parser.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args()
    known = [name for name, _, _ in SECTIONS]
    only = {n for n in args.only.split(",") if n}
    skip = {n for n in args.skip.split(",") if n}
    unknown = (only | skip) - set(known)
    if unknown:
        print(f"bench: unknown section(s) {', '.join(sorted(unknown))}; known: {', '.join(known)}",
              file=sys.stderr)
        return 2
    rows: list[Row] = []
    run_started = time.monotonic()
    work = pathlib.Path(tempfile.mkdtemp(prefix="fleetlog-bench-"))
    ctx = BenchContext(work=work, lines=args.lines, results={"search_events": args.search_events,
                                                                   "search_events_large": args.search_events_large,
                                                                   "purge_events": args.purge_events,
                                                                   "insert_sizes": args.insert_sizes})
    try:
        for name, module, function in SECTIONS:
            if (only and name not in only) or name in skip:
                continue
            started = time.monotonic()
            print(f"== {name} ...", flush=True)
            try:
                section_rows = getattr(importlib.import_module(module), function)(ctx)
            except Exception as exc:  # noqa: BLE001 — report and go on with the other figures
                traceback.print_exc()
                section_rows = [Row(f"{name}: failed", f"{type(exc).__name__}: {exc}".splitlines()[0][:120])]
            for row in section_rows:
                print(f"   {row.figure}: {row.measured} {row.verdict}", flush=True)
            print(f"   ({time.monotonic() - started:.0f} s)", flush=True)
            rows.extend(section_rows)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    table = render_table(rows)
    print()
    print(table)
    minutes = (time.monotonic() - run_started) / 60
    print(f"whole run: {minutes:.1f} min")
    if not args.no_write:
        write_report(table, minutes)
    return 0


def write_report(table: str, minutes: float) -> None:
    path = ROOT / "docs" / "benchmarks.md"
    intro = path.read_text().split("<!-- results -->")[0] if path.exists() else "# Benchmarks\n\n"
    path.write_text(f"{intro}<!-- results -->\n## Latest run\n\n{today()} on {machine_description()}, "
                    f"the whole run {minutes:.1f} min\n\n{table}\n")
    print(f"\nwritten to {path.relative_to(ROOT)}")


if __name__ == "__main__":
    sys.exit(main())
