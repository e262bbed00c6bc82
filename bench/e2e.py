"""End-to-end throughput: file written -> event committed, one agent -> one collector."""

from __future__ import annotations

import pathlib
import sqlite3
import time

from bench.common import cpu_seconds, peak_rss_mib, stored_events, write_workload
from tests.harness import Cluster, wait_for


class _Head:
    """The committed head (seq) of a SQLite store, read through one read-only connection."""

    def __init__(self, db: pathlib.Path):
        self.conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)

    def seq(self) -> int:
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'last_seq'").fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        self.conn.close()


def run_e2e(tmp: pathlib.Path, lines: int, synchronous: str = "full", agents: int = 1,
            collector_overrides: dict | None = None) -> dict:
    cluster = Cluster(tmp)
    try:
        collector = cluster.collector("bench-collector", storage={"synchronous": synchronous},
                                      **(collector_overrides or {}))
        inputs = []
        for n in range(agents):
            path = tmp / f"input-{n}.log"
            write_workload(path, lines // agents, start=n * (lines // agents))
            inputs.append(path)
        total = (lines // agents) * agents
        db = pathlib.Path(collector.config["data_dir"]) / "events.db"
        # Progress is read in the store's main file by this process: asking the collector's
        # /metrics ten times a second cost it 0.4-0.6 µs of CPU an event, charged to ingestion
        # (Prometheus asks every 15 s or more). The committed head counts the collector's own
        # events too, so once it says enough, the agents' events are counted exactly.
        head = _Head(db)
        first = head.seq()
        # The collector is a daemon already up when lines arrive: its CPU is counted from here
        # (starting it, imports and all, cost it 0.3-0.4 s, some 0.7 µs an event at 500,000).
        collector_cpu_before = cpu_seconds(collector.process.pid)
        started = time.monotonic()
        agent_daemons = [
            cluster.agent(f"bench-agent-{n}", [collector], [{"type": "file", "paths": [str(inputs[n])]}],
                          batch={"max_wait": "100ms", "max_events": 5000})
            for n in range(agents)]
        wait_for(lambda: head.seq() - first >= total, timeout=900, what=f"{total} events committed", interval=0.05)
        wait_for(lambda: sum(stored_events(db, f"bench-agent-{n}") for n in range(agents)) >= total,
                 timeout=900, what=f"{total} events stored", interval=0.05)
        head.close()
        elapsed = time.monotonic() - started
        return {
            "events": total, "seconds": elapsed, "rate": total / elapsed,
            "collector_rss_mib": peak_rss_mib(collector.process.pid),
            "agent_rss_mib": max(peak_rss_mib(a.process.pid) for a in agent_daemons),
            "collector_cpu": cpu_seconds(collector.process.pid) - collector_cpu_before,
            "agent_cpu": sum(cpu_seconds(a.process.pid) for a in agent_daemons),
            "input_path": inputs[0],
        }
    finally:
        cluster.stop_all()


def run(ctx) -> list:
    """The end-to-end section: one agent -> one collector, everything committed."""
    from bench.common import Row

    print(f"   {ctx.lines:,} lines, one agent -> one collector, synchronous=full", flush=True)
    e2e = run_e2e(ctx.work / "e2e", ctx.lines)
    ctx.results["e2e"] = e2e
    per_event = lambda cpu: f"{cpu * 1e6 / e2e['events']:.1f}"
    return [
        Row("end-to-end throughput, 1 agent, synchronous=full", f"{e2e['rate']:,.0f} events/s",
            ">= 100,000 events/s", e2e["rate"] >= 100_000),
        Row("agent peak RSS", f"{e2e['agent_rss_mib']:.0f} MiB", "< 80 MiB", e2e["agent_rss_mib"] < 80),
        Row("collector peak RSS", f"{e2e['collector_rss_mib']:.0f} MiB", "< 250 MiB", e2e["collector_rss_mib"] < 250),
        Row("CPU per event (agent / collector)",
            f"{per_event(e2e['agent_cpu'])} / {per_event(e2e['collector_cpu'])} µs"),
    ]


def run_four_agents(ctx) -> list:
    """Four agents -> one collector: the collector's ceiling (on 2 cores the agents compete with it)."""
    from bench.common import Row

    print(f"   {ctx.lines:,} lines over 4 agents -> one collector, synchronous=full", flush=True)
    result = run_e2e(ctx.work / "e2e-4", ctx.lines, agents=4)
    return [Row("end-to-end throughput, 4 agents (collector ceiling)", f"{result['rate']:,.0f} events/s",
                ">= 100,000 events/s", result["rate"] >= 100_000),
            Row("collector peak RSS, 4 agents", f"{result['collector_rss_mib']:.0f} MiB", "< 250 MiB",
                result["collector_rss_mib"] < 250)]


def run_with_restart(ctx) -> list:
    """One agent -> one collector, the collector stopped and started again on the same data_dir
    when half the lines are stored: throughput over the whole run, and every line stored once."""
    from bench.common import Row, stored_events

    lines = min(ctx.lines, 400_000)
    tmp = ctx.work / "e2e-restart"
    print(f"   {lines:,} lines, the collector restarted halfway", flush=True)
    cluster = Cluster(tmp)
    try:
        collector = cluster.collector("bench-collector", storage={"synchronous": "full"})
        path = tmp / "input.log"
        write_workload(path, lines)
        started = time.monotonic()
        cluster.agent("bench-agent", [collector], [{"type": "file", "paths": [str(path)]}],
                      batch={"max_wait": "100ms", "max_events": 5000})
        wait_for(lambda: collector.metric("fleetlog_collector_events_stored_total") >= lines // 2,
                 timeout=600, what="half the lines stored", interval=0.05)
        collector.stop()
        collector.start()
        collector.wait_ready()
        db = tmp / "bench-collector" / "data" / "events.db"

        def stored() -> int:
            return stored_events(db, "bench-agent")
        wait_for(lambda: stored() >= lines, timeout=600, what=f"{lines} events stored", interval=0.2)
        elapsed = time.monotonic() - started
        count = stored()
    finally:
        cluster.stop_all()
    return [Row("end-to-end throughput with one collector restart", f"{lines / elapsed:,.0f} events/s"),
            Row("events stored after the restart (exactly once)", f"{count:,} of {lines:,}", f"{lines:,}",
                count == lines)]
