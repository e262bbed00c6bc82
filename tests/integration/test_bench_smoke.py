"""`make bench` on a small workload: every section here runs and yields its figures.

CI does not run the full benchmark (10 minutes), so this catches a section that breaks (which
`bench/run.py` reports as a "failed" row and carries on). No timing is asserted: the figures
are only checked to be there and to be numbers.
"""

import re
import subprocess
import sys

from tests.harness import ROOT, env

SECTIONS = "e2e,signing,rsyslog,collector-alone,purge,forward"


def _table(output: str) -> dict[str, str]:
    rows = {}
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| ") and len(cells) == 4 and cells[0] != "figure":
            rows[cells[0]] = cells[1]
    return rows


def test_small_bench_run_reports_every_figure_of_its_sections():
    result = subprocess.run(
        [sys.executable, "bench/run.py", "--lines", "20000", "--purge-events", "20000", "--only", SECTIONS,
         "--no-write"], cwd=ROOT, env=env(), capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = _table(result.stdout)
    assert not [figure for figure in rows if "failed" in figure], result.stdout[-3000:]
    number = re.compile(r"^\d[\d,.]*")
    expected = {
        "end-to-end throughput, 1 agent, synchronous=full": "events/s",
        "CPU per event (agent / collector)": "µs",
        "storage layer, chain + checkpoints every 1,000 (default)": "events/s",
        "in it: hash chain (canonical form + 2 x SHA-256, C)": "µs/event",  # the C step was built
        "in it: checkpoints (Ed25519 signature + row)": "µs/event",
        "throughput lost to chain + checkpoints": "%",
        "rsyslog file->tcp->file, same input": "lines/s",
        "end-to-end / rsyslog lines/s": "",
        "CPU per event: agent / collector, beside rsyslog per line (both daemons)": "µs",
        "(agent + collector) CPU per event / rsyslog CPU per line": "",
        "agent CPU per event / rsyslog CPU per line": "",
        "collector alone, 1 writer shard": "events/s",
        "collector alone, 2 writer shards": "events/s",
        "collector alone, 2 writer shards: events stored (exactly once)": "20,000 of 20,000",
        "retention purge of 20,000 expired events (10,000 events/s ingest running)": "events/s",
        "forward to rsyslog (TCP, RFC 5424, 200,000 stored events)": "events/s",
    }
    for figure, unit in expected.items():
        assert figure in rows, f"{figure!r} missing from:\n{result.stdout[-3000:]}"
        assert number.match(rows[figure]) and unit in rows[figure], (figure, rows[figure])
    assert "docs/benchmarks.md" not in result.stdout  # --no-write left the report alone


def test_web_console_bench_section_reports_its_figures():
    """bench/web.py over a small search store (20,000 events) instead of 10 million."""
    result = subprocess.run(
        [sys.executable, "bench/run.py", "--only", "web", "--search-events", "20000", "--no-write"],
        cwd=ROOT, env=env(), capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = _table(result.stdout)
    assert not [figure for figure in rows if "failed" in figure], result.stdout[-3000:]
    for kind in ("no filter (newest first)", "time range (1 h)", "request id", "user, 1 h", "user, all time", "host",
                 "keyword"):
        for label in ("API first page", "events page"):
            assert re.match(r"^\d+ ms / \d+ ms", rows[f"web {label}, {kind}: p50 / p95"])
    assert re.match(r"^\d+ ms / \d+ ms", rows["web API pages 1-20 via _next, no filter: p50 / p95"])
    assert re.match(r"^\d+ ms / \d+ ms", rows["web chart counts, 1 day range: p50 / p95"])
