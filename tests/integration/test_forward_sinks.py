"""The jsonl, file and console forwarders through a real collector: a dead destination holds up
neither ingestion nor the other forwarders and catches up in order when it comes back; file
rotation loses and repeats nothing; SIGHUP adds and removes forwarders."""

from __future__ import annotations

import json
import signal
import socket
import threading

from tests.harness import free_port, run_cli, wait_for, write_lines


class LineReceiver:
    """A plain TCP listener collecting newline-delimited JSON, like a Logstash json_lines input."""

    def __init__(self, port: int):
        self.server = socket.create_server(("127.0.0.1", port))
        self.server.settimeout(0.2)
        self.lines: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            buffer = b""
            with conn:
                conn.settimeout(0.2)
                while not self._stop.is_set():
                    try:
                        data = conn.recv(65536)
                    except TimeoutError:
                        continue
                    if not data:
                        break
                    buffer += data
                    *complete, buffer = buffer.split(b"\n")
                    self.lines.extend(json.loads(line) for line in complete)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.server.close()


def _file_events(path):
    """Events of a rotated file set, oldest file first (path.N ... path.1, path)."""
    rotated = sorted(path.parent.glob(path.name + ".*"), key=lambda p: -int(p.suffix[1:]))
    events = []
    for part in [*rotated, path]:
        events += [json.loads(line) for line in part.read_text().splitlines()]
    return events


def test_dead_destination_stalls_nothing_and_catches_up(cluster, tmp_path):
    jsonl_port = free_port()
    archive = tmp_path / "archive" / "events.jsonl"
    collector = cluster.collector(forwarders=[
        {"type": "jsonl", "name": "lake", "port": jsonl_port},
        {"type": "file", "name": "archive", "path": str(archive), "rotate_bytes": "8KiB", "rotate_max": 100},
        {"type": "console", "name": "stdout", "min_level": "error", "log_types": ["application"]},
    ])
    logs = tmp_path / "logs"
    logs.mkdir()
    levels = ["info", "error", "warning", "info", "critical"]
    lines = [f"2025-12-02T14:30:45.{i:06d}Z {levels[i % 5].upper()} event {i:04d}" for i in range(200)]
    write_lines(logs / "app.log", lines)
    cluster.agent("web-1", [collector], [{"type": "file", "paths": [str(logs / "*.log")]}])

    wait_for(lambda: collector.metric("fleetlog_collector_events_stored_total", {"host": "web-1"}) == 200,
             30, "ingestion while the lake is down")
    wait_for(lambda: sum(e["host"] == "web-1" for e in _file_events(archive)) == 200,
             20, "archive caught up while the lake is down")
    wait_for(lambda: collector.metric("fleetlog_collector_forward_errors_total", {"forwarder": "lake"}) >= 1,
             10, "lake failing")
    wait_for(lambda: collector.metric("fleetlog_collector_forward_lag_events", {"forwarder": "lake"}) > 200,
             10, "the outage shows as lag")

    archived = _file_events(archive)
    assert [e["seq"] for e in archived] == list(range(1, len(archived) + 1))   # every event once, in order
    assert [e["message"] for e in archived if e["host"] == "web-1"] == [line.split(" ", 2)[2] for line in lines]
    assert len(list(archive.parent.glob("events.jsonl.*"))) >= 3                 # it did rotate
    assert all(p.stat().st_size <= 8192 for p in archive.parent.glob("events.jsonl.*"))

    wait_for(lambda: collector.metric("fleetlog_collector_forward_events_total", {"forwarder": "stdout"}) == 80,
             10, "console forwarded the errors")
    printed = [json.loads(line) for line in collector.log_path.read_text().splitlines() if line.startswith('{"seq"')]
    assert [e["message"] for e in printed] == [line.split(" ", 2)[2] for line in lines
                                               if " ERROR " in line or " CRITICAL " in line]

    status = run_cli("--collector", collector.address, "status")
    assert status.returncode == 0, status.stderr
    assert "forwarder archive: ok, lag 0 events" in status.stdout
    assert "forwarder lake: failing: cannot connect to tcp://127.0.0.1:" in status.stdout

    receiver = LineReceiver(jsonl_port)
    try:
        wait_for(lambda: collector.metric("fleetlog_collector_forward_lag_events", {"forwarder": "lake"}) == 0,
                 30, "lake caught up")
        wait_for(lambda: len(receiver.lines) >= len(archived), 10, "lake received everything")
        seqs = [e["seq"] for e in receiver.lines]
        assert seqs == list(range(1, seqs[-1] + 1))
        assert [e["message"] for e in receiver.lines if e["host"] == "web-1"] == [l.split(" ", 2)[2] for l in lines]
        assert {e["action"] for e in receiver.lines if e["host"] != "web-1"} >= {"Collector.Forwarder.Failed"}
    finally:
        receiver.close()


def test_sighup_adds_and_removes_forwarders(cluster, tmp_path):
    first = tmp_path / "first.jsonl"
    collector = cluster.collector(forwarders=[{"type": "file", "name": "first", "path": str(first)}])
    wait_for(lambda: first.exists() and len(first.read_text().splitlines()) >= 2, 10, "start events forwarded")
    second = tmp_path / "second.jsonl"
    cluster.rewrite(collector, forwarders=[{"type": "file", "name": "second", "path": str(second),
                                            "log_types": ["audit"]}])
    collector.process.send_signal(signal.SIGHUP)
    # A new forwarder starts at the beginning of the store; the removed one stops.
    wait_for(lambda: second.exists() and len(second.read_text().splitlines()) >= 2, 10, "second forwarder started")
    run_cli("--collector", collector.address, "note", "after the reload")
    wait_for(lambda: "after the reload" in second.read_text(), 10, "note forwarded by the new forwarder")
    assert "after the reload" not in first.read_text()
    assert [json.loads(line)["seq"] for line in second.read_text().splitlines()][:2] == [1, 2]

    cluster.rewrite(collector, forwarders=[{"type": "syslog", "name": "bad", "facility": "local12"}])
    collector.process.send_signal(signal.SIGHUP)
    wait_for(lambda: "reload refused" in collector.log(), 10, "bad reload refused")
    assert "forwarders[0].facility: unknown facility 'local12'" in collector.log()
    run_cli("--collector", collector.address, "note", "still forwarding")
    wait_for(lambda: "still forwarding" in second.read_text(), 10, "old forwarders kept after a refused reload")
