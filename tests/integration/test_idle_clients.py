"""Idle clients (issue 20): 1,000 idle TCP connections to the gRPC port and 1,000 to the
metrics/health port leave ingest and /metrics answering, without a thread per connection, and
the collector closes connections that never start speaking."""

from __future__ import annotations

import pathlib
import resource
import socket
import time
import urllib.request

from tests.harness import metric_value, search_json, wait_for
from tests.hostile_peer import batch, chunk, exchange, hello, run

IDLE = 1_000


def _threads(pid: int) -> int:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no Threads in /proc status")


def _open_fds(pid: int) -> int:
    return len(list(pathlib.Path(f"/proc/{pid}/fd").iterdir()))


def _connect_idle(port: int, n: int) -> list[socket.socket]:
    sockets = []
    for _ in range(n):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sockets.append(sock)
    return sockets


def test_a_thousand_idle_connections_on_each_port_leave_ingest_and_metrics_answering(cluster):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4 * IDLE:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8 * IDLE), hard))
    collector = cluster.collector()
    pid = collector.process.pid
    threads_before = _threads(pid)
    idle: list[socket.socket] = []
    try:
        idle += _connect_idle(collector.port, IDLE)
        idle += _connect_idle(collector.metrics_port, IDLE)
        wait_for(lambda: _open_fds(pid) >= 2 * IDLE, 20, "the collector to accept every idle connection")
        # No thread per connection: the count stays what it was give or take grpc's own pool.
        assert _threads(pid) <= threads_before + 4, (threads_before, _threads(pid))

        started = time.monotonic()
        with urllib.request.urlopen(f"http://127.0.0.1:{collector.metrics_port}/metrics", timeout=5) as response:
            text = response.read().decode()
        metrics_seconds = time.monotonic() - started
        assert metric_value(text, "fleetlog_collector_agents_connected") == 0

        started = time.monotonic()
        replies, code, _ = run(exchange(collector.address, [hello("busy-1"), batch(1, [chunk(3)])], timeout=5))
        ingest_seconds = time.monotonic() - started
        assert code is None and [(r.batch_id, r.stored) for r in replies] == [(1, 3)]
        assert len(search_json(collector, "--host", "busy-1")) == 3
        print(f"with {IDLE} idle connections on each port: /metrics {metrics_seconds * 1000:.0f} ms, "
              f"ingest of one batch {ingest_seconds * 1000:.0f} ms (shared machine, noisy)")
        # Connections that never complete a handshake or a request head are closed by the
        # collector (grpc.server_handshake_timeout_ms, HEAD_TIMEOUT), not held forever.
        wait_for(lambda: _open_fds(pid) < IDLE // 10, 40, "idle connections closed by the collector",
                 interval=0.5)
    finally:
        for sock in idle:
            sock.close()
