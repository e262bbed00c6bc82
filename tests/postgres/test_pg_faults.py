"""The database goes away under a cluster: collectors stop acknowledging and report not ready,
agents keep their spools, and when PostgreSQL is back everything arrives exactly once. A
collector started while the database is down waits for it."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

import pytest

from tests.harness import Cluster, search_json, wait_for, write_lines
from tests.pg import PgServer


@pytest.fixture
def own_server():
    """A server of this test's own: it is stopped and started again under the collectors."""
    server = PgServer()
    try:
        server.start()
        yield server
    finally:
        server.close()


def _readyz(collector) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{collector.metrics_port}/readyz", timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _lines(start: int, end: int) -> list[str]:
    return [f"2025-12-01T10:00:00Z info line {i:05d}" for i in range(start, end)]


def test_database_restart_mid_stream_loses_and_doubles_nothing(tmp_path, own_server):
    dsn = own_server.create_database()
    cluster = Cluster(tmp_path)
    try:
        storage = {"storage": {"backend": "postgresql", "dsn": dsn}}
        a, b = cluster.collector("col-a", **storage), cluster.collector("col-b", **storage)
        log = tmp_path / "app.log"
        write_lines(log, _lines(0, 2000))
        cluster.agent("web-1", [a, b], [{"type": "file", "paths": [str(log)]}],
                      batch={"max_events": 200, "max_wait": "20ms"})
        wait_for(lambda: a.metric("fleetlog_collector_events_stored_total") >= 2000, timeout=60,
                 what="the first lines stored")

        own_server.stop()
        write_lines(log, _lines(2000, 4000))
        for collector in (a, b):
            wait_for(lambda c=collector: _readyz(c) == 503, timeout=20, what="not ready while the database is down")
            assert collector.metric("fleetlog_collector_storage_up") == 0
        stored_while_down = a.metric("fleetlog_collector_events_stored_total")
        time.sleep(0.5)
        assert a.metric("fleetlog_collector_events_stored_total") == stored_while_down   # nothing acknowledged

        own_server.start()
        for collector in (a, b):
            wait_for(lambda c=collector: _readyz(c) == 200, timeout=30, what="ready again")
            assert collector.metric("fleetlog_collector_storage_up") == 1
        wait_for(lambda: len(search_json(b, "--host", "web-1", "--message", "line")) >= 4000, timeout=120,
                 what="every line stored after the database came back", interval=0.5)
        messages = sorted(e["message"] for e in search_json(a, "--host", "web-1", "--message", "line"))
        assert messages == [f"line {i:05d}" for i in range(4000)]
    finally:
        cluster.stop_all()


def test_a_collector_started_while_the_database_is_down_waits_for_it(tmp_path, own_server):
    dsn = own_server.create_database()
    own_server.stop()
    cluster = Cluster(tmp_path)
    try:
        collector = cluster.collector("col-a", start=False, storage={"backend": "postgresql", "dsn": dsn})
        collector.start()
        wait_for(lambda: "waiting for the database" in collector.log(), timeout=20, what="the wait said in the log")
        assert collector.process.poll() is None          # waiting, not exited
        own_server.start()
        collector.wait_ready(timeout=30)
        assert collector.metric("fleetlog_collector_storage_up") == 1
        wait_for(lambda: "listening on" in collector.log(), timeout=20, what="the start finished")
        # The database goes away again: a running collector still stops cleanly and in time,
        # and SIGTERM while waiting at start is a clean stop too.
        own_server.stop()
        assert collector.stop(timeout=20) == 0
        second = cluster.collector("col-b", start=False, storage={"backend": "postgresql", "dsn": dsn})
        second.start()
        wait_for(lambda: "waiting for the database" in second.log(), timeout=20, what="col-b waiting")
        assert second.stop() == 0
        assert "stopped while waiting for the database" in second.log()
    finally:
        if own_server.proc is None:
            own_server.start()
        cluster.stop_all()


def test_a_schema_from_a_newer_fleetlog_is_refused_with_one_line(tmp_path, pg_dsn):
    import psycopg

    from fleetlog.collector.store import pg_schema

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        pg_schema.migrate(conn, "future-collector")
        conn.execute("INSERT INTO fleetlog_schema(version, applied_by) VALUES (%s, 'future')",
                     (pg_schema.LATEST_VERSION + 1,))
    cluster = Cluster(tmp_path)
    collector = cluster.collector("col-a", start=False, storage={"backend": "postgresql", "dsn": pg_dsn})
    collector.start()
    try:
        assert collector.process.wait(30) == 1
    finally:
        cluster.stop_all()
    lines = [line for line in collector.log().splitlines() if line.startswith("fleetlog-collector:")]
    expected = (f"fleetlog-collector: the database schema is version {pg_schema.LATEST_VERSION + 1}, made by a "
                f"newer fleetlog; this collector knows versions up to {pg_schema.LATEST_VERSION}: upgrade it "
                "(refusing to touch a newer schema)")
    assert lines == [expected]
    assert "Traceback" not in collector.log()
