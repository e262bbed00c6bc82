"""The agent's memory with a full spool (contract §5: agent RSS < 80 MiB at any spool size).

The collector is down while the agent reads 2,000,000 lines into a 256 MiB spool (`when_full =
block`, batches uncompressed so the spool fills with fewer lines): peak RSS once the spool is
full and reading has stopped. Then the collector comes up on the agent's address and the agent
ships from the full spool: peak RSS while 64 MiB of it drain.
"""

from __future__ import annotations

from bench.common import BenchContext, Row, peak_rss_mib, write_workload
from tests.harness import Cluster, free_port, wait_for

LINES = 2_000_000
SPOOL_BYTES = 256 * 1024 * 1024


def run(ctx: BenchContext) -> list[Row]:
    tmp = ctx.work / "spool-rss"
    cluster = Cluster(tmp)
    port = free_port()
    try:
        path = tmp / "input.log"
        tmp.mkdir(parents=True, exist_ok=True)
        write_workload(path, LINES)
        agent = cluster.agent("bench-agent", [f"127.0.0.1:{port}"], [{"type": "file", "paths": [str(path)]}],
                              spool={"max_bytes": "256MiB", "when_full": "block"},
                              batch={"max_wait": "100ms", "max_events": 5000, "compression": "none"})
        spooled = lambda: agent.metric("fleetlog_agent_spool_bytes")
        wait_for(lambda: spooled() >= SPOOL_BYTES * 0.97, timeout=240, what="a full spool", interval=0.5)
        full_bytes = spooled()
        full_rss = peak_rss_mib(agent.process.pid)
        cluster.collector("bench-collector", listen=f"127.0.0.1:{port}")
        wait_for(lambda: spooled() <= full_bytes - 64 * 1024 * 1024, timeout=240, what="64 MiB of the spool shipped",
                 interval=0.5)
        drain_rss = peak_rss_mib(agent.process.pid)
    finally:
        cluster.stop_all()
    return [
        Row(f"agent peak RSS, spool full ({full_bytes / 2**20:.0f} MiB, reading blocked)", f"{full_rss:.0f} MiB",
            "< 80 MiB", full_rss < 80),
        Row("agent peak RSS, shipping from the full spool", f"{drain_rss:.0f} MiB", "< 80 MiB", drain_rss < 80),
    ]
