"""End-to-end latency at a steady rate: a writer appends lines carrying their own write time at
10,000 lines/s; a reader polls the collector's database (WAL lets it read beside the writer) and
takes, for each newly committed event, now minus the time written into the line. So the figure
is "written -> committed and searchable", including the agent's poll and batch wait."""

from __future__ import annotations

import datetime as dt
import pathlib
import threading
import time

from bench.common import Row
from fleetlog.collector.store.sqlite import SqliteReader
from tests.harness import Cluster, wait_for

RATE = 10_000          # lines per second
SECONDS = 20           # steady-state duration
TICK = 0.01            # the writer appends every 10 ms


def _line(i: int, now: float) -> str:
    stamp = dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return f"{stamp} INFO req=l{i % 9973:05d} user=user{i % 97}@example.com latency probe seq={i:09d}\n"


def _write_steady(path: pathlib.Path, total: int, stop: threading.Event) -> None:
    per_tick = int(RATE * TICK)
    written = 0
    started = time.monotonic()
    with open(path, "a", buffering=1 << 16) as handle:
        while written < total and not stop.is_set():
            due = started + (written / RATE)
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            now = time.time()
            handle.write("".join(_line(written + k, now) for k in range(per_tick)))
            handle.flush()
            written += per_tick


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def measure(tmp: pathlib.Path) -> dict:
    cluster = Cluster(tmp)
    total = RATE * SECONDS
    stop = threading.Event()
    try:
        collector = cluster.collector("latency-collector", storage={"synchronous": "full"})
        path = tmp / "steady.log"
        path.touch()
        # The shipped default batch wait (contract §2), not the tests' shorter one.
        cluster.agent("latency-agent", [collector], [{"type": "file", "paths": [str(path)]}],
                      batch={"max_wait": "200ms"})
        db_path = pathlib.Path(collector.config["data_dir"]) / "events.db"
        wait_for(db_path.exists, 30, "collector database")
        writer = threading.Thread(target=_write_steady, args=(path, total, stop), daemon=True)
        reader = wait_for(lambda: SqliteReader(str(db_path)), 30, "collector database schema")
        latencies: list[float] = []
        cursor = reader.heads()          # what follow and forwarders read after: a cursor
        writer.start()
        deadline = time.monotonic() + SECONDS + 60
        while len(latencies) < total and time.monotonic() < deadline:
            pages = reader.read_after(cursor, None, 5000)
            now_us = time.time() * 1e6
            for chain_id, rows in pages:
                for row in rows:
                    if row[8].startswith("file:"):     # source
                        latencies.append((now_us - row[2]) / 1e6)
                cursor[chain_id] = rows[-1][0]
            if not pages:
                time.sleep(0.005)
        reader.close()
        return {"count": len(latencies), "expected": total,
                "p50": percentile(latencies, 0.50) if latencies else float("nan"),
                "p99": percentile(latencies, 0.99) if latencies else float("nan")}
    finally:
        stop.set()
        cluster.stop_all()


def run(ctx) -> list[Row]:
    print(f"   {RATE:,} lines/s for {SECONDS} s, one agent -> one collector", flush=True)
    result = measure(ctx.work / "latency")
    complete = result["count"] == result["expected"]
    note = "" if complete else f" (only {result['count']:,} of {result['expected']:,} arrived)"
    return [
        Row("latency p50 at 10,000 events/s (written -> committed)", f"{result['p50'] * 1000:.0f} ms{note}"),
        Row("latency p99 at 10,000 events/s (written -> committed)", f"{result['p99'] * 1000:.0f} ms{note}",
            "< 1 s", complete and result["p99"] < 1.0),
    ]
