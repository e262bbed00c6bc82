"""End-to-end throughput with the PostgreSQL backend, beside SQLite's figure of the same run:
one agent -> one collector -> PostgreSQL, and two agents -> two collectors -> one PostgreSQL.

The server is Debian's PostgreSQL started in a temporary directory (tests/pg.py) with fsync on,
so a commit is as durable as SQLite's synchronous=full; everything shares the machine's cores
with the collectors and agents.
"""

from __future__ import annotations

import time

from bench.common import Row, cpu_seconds, peak_rss_mib, write_workload
from tests.harness import Cluster, wait_for

MAX_LINES = 300_000


def _run(tmp, dsn: str, lines: int, collectors: int) -> dict:
    cluster = Cluster(tmp)
    try:
        daemons = [cluster.collector(f"bench-pg-{n}", storage={"backend": "postgresql", "dsn": dsn})
                   for n in range(collectors)]
        per = lines // collectors
        inputs = []
        for n in range(collectors):
            path = tmp / f"input-{n}.log"
            write_workload(path, per, start=n * per)
            inputs.append(path)
        started = time.monotonic()
        for n in range(collectors):
            cluster.agent(f"bench-agent-{n}", [daemons[n]], [{"type": "file", "paths": [str(inputs[n])]}],
                          batch={"max_wait": "100ms", "max_events": 5000})
        total = per * collectors
        wait_for(lambda: sum(d.metric("fleetlog_collector_events_stored_total") for d in daemons) >= total,
                 timeout=900, what=f"{total} events stored", interval=0.1)
        elapsed = time.monotonic() - started
        return {"events": total, "rate": total / elapsed,
                "collector_rss_mib": max(peak_rss_mib(d.process.pid) for d in daemons),
                "collector_cpu": sum(cpu_seconds(d.process.pid) for d in daemons)}
    finally:
        cluster.stop_all()


def run(ctx) -> list:
    from tests.pg import PgServer

    lines = min(ctx.lines, MAX_LINES)
    server = PgServer(durable=True)
    rows = []
    try:
        server.start()
        for collectors in (1, 2):
            dsn = server.create_database()
            print(f"   {lines:,} lines, {collectors} agent(s) -> {collectors} collector(s) -> one PostgreSQL", flush=True)
            result = _run(ctx.work / f"pg-{collectors}", dsn, lines, collectors)
            ctx.results[f"postgres-{collectors}"] = result
            rows.append(Row(f"end-to-end throughput, PostgreSQL, {collectors} collector(s)",
                            f"{result['rate']:,.0f} events/s"))
            rows.append(Row(f"collector CPU per event, PostgreSQL, {collectors} collector(s)",
                            f"{result['collector_cpu'] * 1e6 / result['events']:.1f} µs"))
        sqlite = ctx.results.get("e2e")
        if sqlite:
            rows.append(Row("end-to-end throughput, SQLite (section e2e, same run)", f"{sqlite['rate']:,.0f} events/s"))
    finally:
        server.close()
    return rows
