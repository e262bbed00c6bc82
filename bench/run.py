"""`make bench`: fleetlog measured against the SPEC §5 targets, with rsyslog doing the same job
in the same run. Prints one table and writes docs/benchmarks.md.

    python bench/run.py [--lines N] [--skip-rsyslog] [--no-write]
"""

from __future__ import annotations

import argparse
import pathlib
import shutil
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from bench.common import ROOT, Row, machine_description, render_table, today  # noqa: E402
from bench.e2e import run_e2e  # noqa: E402
from bench.rsyslog import run_rsyslog  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--skip-rsyslog", action="store_true")
    parser.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args()
    rows: list[Row] = []
    work = pathlib.Path(tempfile.mkdtemp(prefix="fleetlog-bench-"))
    try:
        print(f"end to end: {args.lines:,} lines, one agent -> one collector, synchronous=full ...", flush=True)
        e2e = run_e2e(work / "e2e", args.lines)
        rows.append(Row("end-to-end throughput, 1 agent, synchronous=full", f"{e2e['rate']:,.0f} events/s",
                        ">= 100,000 events/s", e2e["rate"] >= 100_000))
        rows.append(Row("agent peak RSS", f"{e2e['agent_rss_mib']:.0f} MiB", "< 80 MiB", e2e["agent_rss_mib"] < 80))
        rows.append(Row("collector peak RSS", f"{e2e['collector_rss_mib']:.0f} MiB", "< 250 MiB",
                        e2e["collector_rss_mib"] < 250))
        rows.append(Row("CPU seconds (agent + collector)", f"{e2e['agent_cpu']:.1f} + {e2e['collector_cpu']:.1f} s"))
        if not args.skip_rsyslog:
            print("rsyslog, same workload (imfile -> TCP -> omfile) ...", flush=True)
            rs = run_rsyslog(e2e["input_path"], e2e["events"])
            if rs is None:
                rows.append(Row("rsyslog file->tcp->file", "rsyslogd not installed (make system-deps)"))
            else:
                rows.append(Row("rsyslog file->tcp->file", f"{rs['rate']:,.0f} lines/s (cpu {rs['cpu']:.1f} s)"))
                ratio = e2e["rate"] / rs["rate"] if rs["rate"] else 0.0
                rows.append(Row("ratio fleetlog / rsyslog", f"{ratio:.2f}", ">= 0.5", ratio >= 0.5))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    table = render_table(rows)
    print()
    print(table)
    if not args.no_write:
        write_report(table)
    return 0


def write_report(table: str) -> None:
    path = ROOT / "docs" / "benchmarks.md"
    intro = path.read_text().split("<!-- results -->")[0] if path.exists() else "# Benchmarks\n\n"
    path.write_text(f"{intro}<!-- results -->\n## Latest run\n\n{today()} on {machine_description()}\n\n{table}\n")
    print(f"\nwritten to {path.relative_to(ROOT)}")


if __name__ == "__main__":
    sys.exit(main())
