"""The agent's read+parse rate alone: a real FileSource reads a prepared file and parses every
line, with an emit that only commits (no batching, no network), in a child process so its peak
RSS is its own. The agent's CPU is the end-to-end throughput limit, so this is its ceiling.

    python -m bench.source_read FILE PARSER      # worker: prints one JSON result line
"""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

from bench.common import ROOT, Row, peak_rss_mib

TARGET_LINES_PER_S = 200_000
RSS_TARGET_MIB = 80


def write_plain(path: pathlib.Path, count: int) -> None:
    """~120-byte lines with no time, level or key=value pairs."""
    with open(path, "w") as handle:
        handle.writelines("".join(
                f"user{i % 97} logged in from 10.0.{i % 256}.{i % 100} session {i:09d} "
                f"via the LDAP authentication backend, all checks passed\n"
                for i in range(start, min(count, start + 10_000))) for start in range(0, count, 10_000))


def write_structured(path: pathlib.Path, count: int) -> None:
    from bench.common import write_workload
    write_workload(path, count)


def worker(path: str, parser: str) -> dict:
    if parser.endswith("-python"):
        # The pure-Python fallback, as on a machine where agent/_parse_native.c is not built.
        sys.modules["fleetlog.agent._parse_native"] = None
        parser = parser.removesuffix("-python")
    from fleetlog.agent.sources.file import FileSource, FileSourceConfig

    with open(path, "rb") as handle:
        total = sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    state = pathlib.Path(tempfile.mkdtemp(prefix="fleetlog-bench-source-"))
    source = FileSource(FileSourceConfig(type="file", paths=[path], name="bench", parser=parser), state)
    seen = 0
    done = asyncio.Event()

    async def emit(batch) -> None:
        nonlocal seen
        seen += len(batch.records)
        source.commit(batch.checkpoint)
        if seen >= total:
            done.set()

    async def main() -> float:
        started = time.perf_counter()
        cpu = time.process_time()
        task = asyncio.create_task(source.run(emit))
        await done.wait()
        elapsed_cpu = time.process_time() - cpu
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return max(time.perf_counter() - started, 1e-9), elapsed_cpu

    wall, cpu = asyncio.run(main())
    shutil.rmtree(state, ignore_errors=True)
    return {"lines": seen, "wall": wall, "cpu": cpu, "rss_mib": peak_rss_mib(os.getpid())}


def _measure(path: pathlib.Path, parser: str) -> dict:
    result = subprocess.run([sys.executable, "-m", "bench.source_read", str(path), parser], cwd=ROOT,
                            capture_output=True, text=True, timeout=600, check=False)
    if result.returncode != 0:
        raise RuntimeError(result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "worker failed")
    return json.loads(result.stdout.strip().splitlines()[-1])


def run(ctx) -> list[Row]:
    count = max(100_000, min(ctx.lines, 1_000_000))
    plain = ctx.work / "source-plain.log"
    structured = ctx.work / "source-structured.log"
    write_plain(plain, count)
    write_structured(structured, count)
    rows = []
    peak = 0.0
    for label, path, parser, target in (
            ("plain lines, parser=plain", plain, "plain", True),
            ("plain lines, parser=auto", plain, "auto", True),
            ("time+level+key=value lines, parser=auto", structured, "auto", False),
            ("time+level+key=value lines, parser=auto, Python fallback", structured, "auto-python", False)):
        result = _measure(path, parser)
        rate = result["lines"] / result["cpu"] if result["cpu"] else 0.0
        peak = max(peak, result["rss_mib"])
        rows.append(Row(f"agent read+parse, {label} ({result['lines']:,} lines, per CPU second)",
                        f"{rate:,.0f} lines/s", f">= {TARGET_LINES_PER_S:,} lines/s" if target else "",
                        rate >= TARGET_LINES_PER_S if target else None))
    rows.append(Row("agent read+parse peak RSS", f"{peak:.0f} MiB", f"< {RSS_TARGET_MIB} MiB", peak < RSS_TARGET_MIB))
    return rows


if __name__ == "__main__":
    print(json.dumps(worker(sys.argv[1], sys.argv[2])))
