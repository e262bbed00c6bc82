"""What Prometheus users expect from any exporter, read from live daemons: the standard process
metrics describing the daemon's own process, `fleetlog_build_info`, and the gauges the shipped
alert rules decide on (readiness, spool limit, file system, chain head against the last signed
checkpoint, purge schedule) — and the failure counters moving when the store really fails."""

from __future__ import annotations

import datetime as dt
import os
import pathlib
import signal
import sqlite3
import time

from fleetlog.common import __version__
from tests.harness import search_json, wait_for, write_lines

MiB = 1024 * 1024


def _proc_rss_bytes(pid: int) -> int:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _check_process_metrics(daemon, started: float, ready: float) -> None:
    """The process_* samples describe the daemon's process, not some other one."""
    pid = daemon.process.pid
    value = daemon.metric
    start = value("process_start_time_seconds")
    assert started - 2 <= start <= ready + 1, (started, start, ready)
    rss = value("process_resident_memory_bytes")
    assert 5 * MiB < rss < 1024 * MiB
    assert abs(rss - _proc_rss_bytes(pid)) < 0.5 * rss
    assert value("process_virtual_memory_bytes") >= rss
    assert value("process_cpu_seconds_total") > 0
    fds = value("process_open_fds")
    assert abs(fds - len(os.listdir(f"/proc/{pid}/fd"))) <= 5
    assert value("process_max_fds") >= fds


def test_both_daemons_expose_process_metrics_build_info_and_alert_gauges(cluster, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    # Recent times: purges run every second and must not take these (retention keeps 90 days).
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    write_lines(logs / "app.log", [f"{stamp} INFO line {i}" for i in range(5)])
    started = time.time()
    collector = cluster.collector(signing={"checkpoint_interval": "1s"},
                                  retention={"purge_interval": "1s"})
    collector_ready = time.time()
    agent_started = time.time()
    agent = cluster.agent("web-1", [collector], [{"type": "file", "paths": [str(logs / "*.log")]}],
                          spool={"max_bytes": "4MiB"})
    agent.wait_ready()
    agent_ready = time.time()

    _check_process_metrics(collector, started, collector_ready)
    _check_process_metrics(agent, agent_started, agent_ready)
    assert collector.metric("fleetlog_build_info", {"daemon": "collector", "version": __version__}) == 1
    assert agent.metric("fleetlog_build_info", {"daemon": "agent", "version": __version__}) == 1
    assert agent.metric("fleetlog_build_info", {"daemon": "collector"}) == 0

    assert agent.metric("fleetlog_agent_spool_max_bytes") == 4 * MiB
    # Counters an alert watches with increase() exist at 0 before their first event.
    for reason in ("spool_full", "filtered", "collector_threshold"):
        assert f'fleetlog_agent_events_dropped_total{{reason="{reason}"}} 0.0' in agent.metrics()
    for reason in ("below_level", "namespace_denied", "bad_batch"):
        assert f'fleetlog_collector_events_dropped_total{{reason="{reason}"}} 0.0' in collector.metrics()
    for tier in ("general", "security"):
        assert f'fleetlog_collector_events_purged_total{{tier="{tier}"}} 0.0' in collector.metrics()
    value = lambda name: collector.metric("fleetlog_collector_" + name)
    assert value("ready") == 1
    st = os.statvfs(collector.config["data_dir"])
    assert value("storage_filesystem_size_bytes") == st.f_blocks * st.f_frsize
    assert 0 < value("storage_filesystem_avail_bytes") <= value("storage_filesystem_size_bytes")
    assert value("checkpoint_interval_seconds") == 1
    assert value("purge_interval_seconds") == 1

    # The five lines and the start event are stored; the timer signs the head within its interval.
    wait_for(lambda: len(search_json(collector, "--host", "web-1")) == 5, 30, "five events stored")
    head = max(e["seq"] for e in search_json(collector))
    wait_for(lambda: value("last_checkpoint_seq") == value("chain_head_seq") >= head, 30, "head signed")
    assert time.time() - 30 < value("last_checkpoint_timestamp_seconds") <= time.time()
    assert value("checkpoints_total") >= 1

    # Purges run every second: the last one is recent and the next one is due within the interval.
    wait_for(lambda: value("last_purge_timestamp_seconds") > collector_ready, 30, "a purge ran")
    next_purge = value("next_purge_timestamp_seconds")
    now = time.time()   # after the scrape: the next purge is at most one interval after it
    assert now - 30 < next_purge <= now + 1
    assert value("purge_failures_total") == 0
    assert value("ingest_errors_total") == 0

    # Not ready when stopping; the agent reports itself disconnected.
    collector.stop()
    wait_for(lambda: agent.metric("fleetlog_agent_connected") == 0, 30, "agent disconnected")


def test_a_locked_store_counts_ingest_errors_and_purge_failures(cluster, tmp_path):
    """Another process holding the database's write lock: a batch is refused and counted, a purge
    fails and is counted, and once the lock goes the agent's re-send is stored once and the
    expired event is purged."""
    collector = cluster.collector(retention={"general": "indefinite", "purge_interval": "1h"})
    value = lambda name: collector.metric("fleetlog_collector_" + name)
    logs = tmp_path / "logs"
    logs.mkdir()
    write_lines(logs / "app.log", ["2020-01-01T00:00:00Z INFO from long ago"])
    agent = cluster.agent("web-1", [collector], [{"type": "file", "paths": [str(logs / "*.log")]}])
    wait_for(lambda: len(search_json(collector, "--host", "web-1")) == 1, 30, "the old event stored")

    lock = sqlite3.connect(os.path.join(collector.config["data_dir"], "events.db"), isolation_level=None)
    try:
        lock.execute("BEGIN EXCLUSIVE")
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        write_lines(logs / "app.log", [f"{now} ERROR disk on fire"])
        wait_for(lambda: value("ingest_errors_total") >= 1, 60, "a refused batch counted")
        # The old event expires now and purges run every second; deleting it needs the lock.
        cluster.rewrite(collector, retention={"general": "1d", "purge_interval": "1s"})
        collector.process.send_signal(signal.SIGHUP)
        wait_for(lambda: value("purge_failures_total") >= 1, 60, "a failed purge counted")
        assert value("last_purge_timestamp_seconds") == 0
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    wait_for(lambda: [e["message"] for e in search_json(collector, "--host", "web-1")] == ["disk on fire"], 60,
             "the re-sent event stored and the old one purged")
    wait_for(lambda: value("last_purge_timestamp_seconds") > 0, 30, "a purge succeeded")
    wait_for(lambda: agent.metric("fleetlog_agent_spool_events") == 0, 30, "agent spool drained")
    assert value("events_stored_total") == 2
    assert value("ready") == 1
