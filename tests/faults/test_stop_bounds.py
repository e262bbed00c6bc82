"""Both daemons stop within their bound in every state (docs/installing.md, "Stopping"), and a restart then
delivers every line exactly once. Each test brings a real agent (or collector) into one state,
sends SIGTERM, checks it exited by itself in time with a clean log, and counts what was stored.
"""

from __future__ import annotations

import hashlib
import signal
import socket
import subprocess
import threading
import time

import pytest

from fleetlog.agent.app import STOP_BOUND as AGENT_STOP_BOUND
from fleetlog.collector.app import STOP_BOUND as COLLECTOR_STOP_BOUND
from tests.faults.support import (
    PacedWriter,
    assert_exactly_once,
    numbered,
    stored_count,
    stored_seqs,
    wait_stored,
)
from tests.harness import Daemon, metric_value, wait_for, write_lines, write_toml

HOST = "web-1"
LINES = 3_000
# Process start-up and Python's own exit come on top of the daemon's bound.
SLACK = 5.0


class BlackHole:
    """Accepts TCP connections and never reads or answers: a peer that hangs."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, name="black-hole", daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()


@pytest.fixture
def black_hole():
    hole = BlackHole()
    try:
        yield hole
    finally:
        hole.close()


def _logs(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    return logs


def _file_source(logs) -> list[dict]:
    return [{"type": "file", "paths": [str(logs / "*.log")]}]


def _sigterm_and_wait(daemon: Daemon, bound: float) -> int:
    """SIGTERM; the daemon must exit by itself within bound + SLACK, with no traceback logged."""
    assert daemon.process is not None and daemon.process.poll() is None, daemon.log()
    started = time.monotonic()
    daemon.process.send_signal(signal.SIGTERM)
    try:
        code = daemon.process.wait(bound + SLACK)
    except subprocess.TimeoutExpired:
        daemon.process.kill()
        daemon.process.wait(5)
        raise AssertionError(f"{daemon.kind} still running {bound + SLACK:.0f} s after SIGTERM:\n{daemon.log()}")
    took = time.monotonic() - started
    assert "Traceback" not in daemon.log(), daemon.log()
    assert code == 0, f"exit {code} after {took:.1f} s:\n{daemon.log()}"
    print(f"{daemon.kind} stopped in {took:.1f} s (bound {bound:.0f} s)")
    return code


def _spooled(agent: Daemon, count: int) -> None:
    wait_for(lambda: agent.metric("fleetlog_agent_spool_events") >= count, 30, f"{count} events spooled")


def _restart_and_count(agent: Daemon, collector: Daemon, total: int) -> None:
    agent.start()
    wait_stored(collector, HOST, total)
    wait_for(lambda: metric_value(agent.metrics(), "fleetlog_agent_spool_events") == 0, 30, "spool drained")
    assert_exactly_once(collector, HOST, range(total))


def test_agent_stops_while_connecting_to_a_collector_that_is_not_there(cluster, tmp_path):
    logs = _logs(tmp_path)
    write_lines(logs / "app.log", numbered(0, LINES))
    collector = cluster.collector(start=False)
    agent = cluster.agent(HOST, [collector], _file_source(logs))
    _spooled(agent, LINES)
    _sigterm_and_wait(agent, AGENT_STOP_BOUND)
    collector.start().wait_ready()
    _restart_and_count(agent, collector, LINES)


def test_agent_stops_while_refused_and_backing_off(cluster, tmp_path):
    logs = _logs(tmp_path)
    write_lines(logs / "app.log", numbered(0, LINES))
    tokens = write_toml(tmp_path / "tokens.toml", {"tokens": [
        {"name": HOST, "sha256": hashlib.sha256(b"the-right-token").hexdigest(), "role": "agent",
         "namespaces": ["default"]}]})
    collector = cluster.collector(tokens_file=str(tokens))
    token_file = tmp_path / "agent.token"
    token_file.write_text("a-wrong-token\n")
    agent = cluster.agent(HOST, [collector], _file_source(logs), token_file=str(token_file))
    _spooled(agent, LINES)
    wait_for(lambda: agent.metric("fleetlog_agent_send_errors_total") >= 2, 30, "two refusals")
    _sigterm_and_wait(agent, AGENT_STOP_BOUND)
    # Let the agent in: the collector now runs without tokens (so the check's search needs none).
    assert collector.stop() == 0
    del collector.config["tokens_file"]
    write_toml(collector.config_path, collector.config)
    collector.start().wait_ready()
    _restart_and_count(agent, collector, LINES)


def test_agent_stops_while_streaming(cluster, tmp_path):
    logs = _logs(tmp_path)
    collector = cluster.collector()
    agent = cluster.agent(HOST, [collector], _file_source(logs))
    writer = PacedWriter(logs / "app.log", 0, 20_000, seconds=4.0, chunk=500)
    writer.start()
    wait_stored(collector, HOST, 2_000)
    _sigterm_and_wait(agent, AGENT_STOP_BOUND)
    writer.join()
    _restart_and_count(agent, collector, 20_000)


def test_agent_stops_on_the_fallback_collector_while_probing_the_first(cluster, tmp_path):
    logs = _logs(tmp_path)
    write_lines(logs / "app.log", numbered(0, LINES))
    first = cluster.collector("collector-1", start=False)
    second = cluster.collector("collector-2")
    agent = cluster.agent(HOST, [first, second], _file_source(logs))
    wait_stored(second, HOST, LINES)
    write_lines(logs / "app.log", numbered(LINES, LINES))
    _sigterm_and_wait(agent, AGENT_STOP_BOUND)
    first.start().wait_ready()
    agent.start()
    wait_for(lambda: stored_count(first, HOST) + stored_count(second, HOST) >= 2 * LINES, 60, "all stored")
    wait_for(lambda: agent.metric("fleetlog_agent_spool_events") == 0, 30, "spool drained")
    # Two separate SQLite collectors: each line must be in exactly one of them, once.
    both = stored_seqs(first, HOST) + stored_seqs(second, HOST)
    assert sorted(both) == list(range(2 * LINES)) and set(both.values()) == {1}


def test_agent_stops_with_a_collector_that_accepts_tcp_and_never_answers(cluster, tmp_path, black_hole):
    logs = _logs(tmp_path)
    write_lines(logs / "app.log", numbered(0, LINES))
    agent = cluster.agent(HOST, [black_hole.address], _file_source(logs))
    _spooled(agent, LINES)
    wait_for(lambda: black_hole.accepted, 10, "the agent connected to the black hole")
    _sigterm_and_wait(agent, AGENT_STOP_BOUND)
    collector = cluster.collector()
    cluster.rewrite(agent, collectors=[collector.address])
    _restart_and_count(agent, collector, LINES)


def test_agent_stops_when_the_collector_stops_answering_mid_stream(cluster, tmp_path):
    logs = _logs(tmp_path)
    collector = cluster.collector()
    agent = cluster.agent(HOST, [collector], _file_source(logs))
    writer = PacedWriter(logs / "app.log", 0, 10_000, seconds=2.0, chunk=500)
    writer.start()
    wait_stored(collector, HOST, 1_000)
    assert collector.process is not None
    collector.process.send_signal(signal.SIGSTOP)   # a hung collector: connections stay open
    try:
        writer.join()
        _sigterm_and_wait(agent, AGENT_STOP_BOUND)
    finally:
        collector.process.send_signal(signal.SIGCONT)
    _restart_and_count(agent, collector, 10_000)


def test_agent_stops_with_its_spool_full(cluster, tmp_path):
    logs = _logs(tmp_path)
    total = 20_000                       # ~2.6 MB of lines against a 256 KiB spool
    write_lines(logs / "app.log", numbered(0, total))
    collector = cluster.collector(start=False)
    agent = cluster.agent(HOST, [collector], _file_source(logs),
                          spool={"max_bytes": "256KiB", "when_full": "block"},
                          batch={"max_wait": "50ms", "max_events": 500, "compression": "none"})
    wait_for(lambda: agent.metric("fleetlog_agent_spool_bytes") > 200 * 1024, 30, "spool nearly full")
    assert agent.metric("fleetlog_agent_spool_events") < total
    _sigterm_and_wait(agent, AGENT_STOP_BOUND)
    collector.start().wait_ready()
    _restart_and_count(agent, collector, total)


def test_collector_stops_while_ingesting_and_forwarding_into_a_black_hole(cluster, tmp_path, black_hole):
    logs = _logs(tmp_path)
    collector = cluster.collector(forwarders=[{
        "name": "siem", "type": "syslog", "host": "127.0.0.1", "port": black_hole.port, "protocol": "tcp"}])
    agent = cluster.agent(HOST, [collector], _file_source(logs))
    writer = PacedWriter(logs / "app.log", 0, 20_000, seconds=4.0, chunk=500)
    writer.start()
    wait_stored(collector, HOST, 2_000)
    wait_for(lambda: black_hole.accepted, 10, "the forwarder connected to the black hole")
    _sigterm_and_wait(collector, COLLECTOR_STOP_BOUND)
    writer.join()
    collector.start().wait_ready()
    wait_stored(collector, HOST, 20_000)
    wait_for(lambda: agent.metric("fleetlog_agent_spool_events") == 0, 30, "spool drained")
    assert_exactly_once(collector, HOST, range(20_000))
