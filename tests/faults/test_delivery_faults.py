"""The seven fault tests of delivery (contract §4.2): real collectors and agents as processes,
killed, restarted, cut off and starved of spool space; every test ends by counting what was
stored, line by line, through `fleetlog search`."""

from __future__ import annotations

import shutil
import time

from tests.faults.support import PacedWriter, assert_exactly_once, numbered, stored_count, wait_stored
from tests.harness import wait_for, write_lines
from tests.tcp_proxy import CuttingProxy

HOST = "web-1"


def _file_source(logs) -> list[dict]:
    return [{"type": "file", "paths": [str(logs / "*.log")]}]


def _logs(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").touch()
    return logs


def _drained(agent) -> bool:
    """The agent has nothing left to deliver: its spool is empty and it is connected."""
    text = agent.metrics()
    from tests.harness import metric_value
    return metric_value(text, "fleetlog_agent_spool_events") == 0 and metric_value(text, "fleetlog_agent_connected") == 1


def test_1_collector_killed_mid_stream_and_restarted(cluster, tmp_path):
    logs = _logs(tmp_path)
    collector = cluster.collector()
    agent = cluster.agent(HOST, [collector], _file_source(logs))
    writer = PacedWriter(logs / "app.log", 0, 30_000, seconds=3.0)
    writer.start()
    wait_stored(collector, HOST, 3000)
    collector.kill()  # SIGKILL while batches are in flight
    assert stored_count(collector, HOST) < 30_000
    writer.join()
    collector.start().wait_ready()
    wait_stored(collector, HOST, 30_000)
    wait_for(lambda: _drained(agent), 30, "agent spool drained")
    assert_exactly_once(collector, HOST, range(30_000))
    assert agent.metric("fleetlog_agent_send_errors_total") >= 1


def test_2_agent_killed_mid_stream_and_restarted(cluster, tmp_path):
    logs = _logs(tmp_path)
    collector = cluster.collector()
    agent = cluster.agent(HOST, [collector], _file_source(logs))
    writer = PacedWriter(logs / "app.log", 0, 30_000, seconds=3.0)
    writer.start()
    wait_stored(collector, HOST, 3000)
    agent.kill()  # SIGKILL: the spool may hold a torn batch, checkpoints may lag the spool
    assert stored_count(collector, HOST) < 30_000
    writer.join()
    agent.start()
    wait_stored(collector, HOST, 30_000)
    wait_for(lambda: _drained(agent), 30, "agent spool drained")
    assert_exactly_once(collector, HOST, range(30_000))


def test_3_wiped_state_dir_rereads_everything_and_stores_nothing_new(cluster, tmp_path):
    logs = _logs(tmp_path)
    write_lines(logs / "app.log", numbered(0, 10_000))
    collector = cluster.collector()
    agent = cluster.agent(HOST, [collector], _file_source(logs))
    wait_stored(collector, HOST, 10_000)
    wait_for(lambda: _drained(agent), 30, "agent spool drained")
    assert collector.metric("fleetlog_collector_events_duplicate_total", {"host": HOST}) == 0
    assert agent.stop() == 0
    shutil.rmtree(agent.config["state_dir"])
    agent.start()
    wait_for(lambda: collector.metric("fleetlog_collector_events_duplicate_total", {"host": HOST}) >= 10_000,
             60, "10,000 re-sent events counted as duplicates")
    wait_for(lambda: _drained(agent), 30, "agent spool drained")
    assert collector.metric("fleetlog_collector_events_duplicate_total", {"host": HOST}) == 10_000
    assert collector.metric("fleetlog_collector_events_stored_total", {"host": HOST}) == 10_000
    assert agent.metric("fleetlog_agent_events_acked_total") == 10_000
    assert_exactly_once(collector, HOST, range(10_000))


def test_4_collector_down_at_agent_start_and_up_ten_seconds_later(cluster, tmp_path):
    logs = _logs(tmp_path)
    write_lines(logs / "app.log", numbered(0, 10_000))
    collector = cluster.collector(start=False)
    started = time.monotonic()
    agent = cluster.agent(HOST, [collector], _file_source(logs))
    # Reading goes on into the spool while nobody answers.
    wait_for(lambda: agent.metric("fleetlog_agent_spool_events") == 10_000, 30, "10,000 events spooled")
    assert agent.metric("fleetlog_agent_connected") == 0
    wait_for(lambda: agent.metric("fleetlog_agent_send_errors_total") >= 1, 10, "a failed attempt counted")
    # The scenario of the issue: the collector appears 10 s after the agent (several backoff rounds).
    time.sleep(max(0.0, started + 10 - time.monotonic()))
    collector.start().wait_ready()
    wait_stored(collector, HOST, 10_000)
    wait_for(lambda: _drained(agent), 30, "agent spool drained")
    assert_exactly_once(collector, HOST, range(10_000))
    assert collector.metric("fleetlog_collector_events_duplicate_total", {"host": HOST}) == 0
    assert agent.metric("fleetlog_agent_events_acked_total") == 10_000


def test_5_proxy_cutting_the_connection_every_second(cluster, tmp_path):
    logs = _logs(tmp_path)
    collector = cluster.collector()
    proxy = CuttingProxy(collector.port, cut_every=1.0).start()
    try:
        agent = cluster.agent(HOST, [proxy.address], _file_source(logs))
        writer = PacedWriter(logs / "app.log", 0, 30_000, seconds=4.0, chunk=500)
        writer.start()
        writer.join()
        wait_stored(collector, HOST, 30_000)
        wait_for(lambda: proxy.cuts >= 3, 30, "three cuts")
        assert proxy.connections >= 2
        assert agent.metric("fleetlog_agent_send_errors_total") >= 1
        assert_exactly_once(collector, HOST, range(30_000))
    finally:
        proxy.stop()


def test_6_failover_to_the_second_collector_and_back(cluster, tmp_path):
    logs = _logs(tmp_path)
    first = cluster.collector("collector-1")
    second = cluster.collector("collector-2")
    agent = cluster.agent(HOST, [first, second], _file_source(logs))
    write_lines(logs / "app.log", numbered(0, 10_000))
    wait_stored(first, HOST, 10_000)
    wait_for(lambda: _drained(agent), 30, "agent spool drained")
    first.kill()

    write_lines(logs / "app.log", numbered(10_000, 10_000))
    wait_stored(second, HOST, 10_000)
    wait_for(lambda: _drained(agent), 30, "agent spool drained")

    first.start().wait_ready()
    wait_for(lambda: first.metric("fleetlog_collector_agents_connected") == 1, 30, "agent back on collector-1")
    wait_for(lambda: second.metric("fleetlog_collector_agents_connected") == 0, 30, "agent gone from collector-2")
    write_lines(logs / "app.log", numbered(20_000, 10_000))
    wait_stored(first, HOST, 20_000)
    wait_for(lambda: _drained(agent), 30, "agent spool drained")

    # Each collector stores what it received (no cross-collector dedup with separate SQLite files).
    assert_exactly_once(first, HOST, set(range(10_000)) | set(range(20_000, 30_000)))
    assert_exactly_once(second, HOST, range(10_000, 20_000))


def test_7a_full_spool_with_block_pauses_reading_and_resumes(cluster, tmp_path):
    logs = _logs(tmp_path)
    write_lines(logs / "app.log", numbered(0, 60_000))
    collector = cluster.collector(start=False)
    # Uncompressed batches, so that 60,000 lines (~7 MB) overfill the 4 MiB spool.
    agent = cluster.agent(HOST, [collector], _file_source(logs), spool={"max_bytes": "4MiB", "when_full": "block"},
                          batch={"compression": "none"})
    wait_for(lambda: agent.metric("fleetlog_agent_spool_bytes") > 0, 30, "spool in use")
    wait_for(lambda: agent.metric("fleetlog_agent_source_lag_bytes") > 0, 30, "lag reported")
    # Full: the reader waits; what it has read is at most the spool plus the batches at its door.
    read = agent.metric("fleetlog_agent_events_read_total")
    assert read < 60_000
    assert agent.metric("fleetlog_agent_spool_bytes") <= 4 * 1024 * 1024
    assert agent.metric("fleetlog_agent_source_lag_bytes") > 0
    assert agent.metric("fleetlog_agent_events_dropped_total") == 0
    collector.start().wait_ready()
    wait_stored(collector, HOST, 60_000)
    wait_for(lambda: _drained(agent), 30, "agent spool drained")
    assert agent.metric("fleetlog_agent_events_read_total") == 60_000
    assert agent.metric("fleetlog_agent_events_dropped_total") == 0
    assert_exactly_once(collector, HOST, range(60_000))


def test_7b_full_spool_with_drop_oldest_counts_drops_and_keeps_reading(cluster, tmp_path):
    logs = _logs(tmp_path)
    write_lines(logs / "app.log", numbered(0, 60_000))
    collector = cluster.collector(start=False)
    agent = cluster.agent(HOST, [collector], _file_source(logs),   # uncompressed, as in 7a
                          spool={"max_bytes": "4MiB", "when_full": "drop_oldest"}, batch={"compression": "none"})
    wait_for(lambda: agent.metric("fleetlog_agent_events_read_total") == 60_000, 30, "everything read")
    # Every line read is either in the spool or counted as dropped.
    wait_for(lambda: agent.metric("fleetlog_agent_spool_events")
             + agent.metric("fleetlog_agent_events_dropped_total", {"reason": "spool_full"}) == 60_000,
             30, "the last batch spooled")
    dropped = agent.metric("fleetlog_agent_events_dropped_total", {"reason": "spool_full"})
    assert dropped > 0
    assert agent.metric("fleetlog_agent_spool_bytes") <= 4 * 1024 * 1024
    assert agent.process.poll() is None
    collector.start().wait_ready()
    wait_for(lambda: _drained(agent), 30, "agent spool drained")
    kept = 60_000 - int(dropped)
    assert stored_count(collector, HOST) == kept
    # The oldest were dropped: what is stored is exactly the newest `kept` lines, once each.
    assert_exactly_once(collector, HOST, range(60_000 - kept, 60_000))
