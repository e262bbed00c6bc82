"""Cluster bookkeeping on PostgreSQL: forwarder leases (one holder; taken over when the holder's
session dies), shared forwarder cursors, collectors' heartbeats and their nodes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psycopg

from fleetlog.collector.store import pg_cluster, pg_schema
from tests.harness import ROOT, env, wait_for


def _migrated(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        pg_schema.migrate(conn, "test")


def test_one_holder_at_a_time_and_takeover_on_release(pg_dsn):
    _migrated(pg_dsn)
    a, b = pg_cluster.PostgresLease(pg_dsn, "siem"), pg_cluster.PostgresLease(pg_dsn, "siem")
    other = pg_cluster.PostgresLease(pg_dsn, "archive")
    try:
        assert a.held() and a.held()
        assert not b.held()
        assert other.held()            # another forwarder's lease is independent
        a.release()
        assert b.held()
        assert not a.held()
    finally:
        for lease in (a, b, other):
            lease.release()


def test_a_killed_holder_loses_the_lease_at_once(pg_dsn):
    """kill -9 of the holder's process: PostgreSQL ends its session and frees the lock."""
    _migrated(pg_dsn)
    code = ("import sys, threading; from collector.store.pg_cluster import PostgresLease;"
            "lease = PostgresLease(sys.argv[1], 'siem'); assert lease.held(); print('held', flush=True);"
            "threading.Event().wait(120)")   # holds the lease until killed
    holder = subprocess.Popen([sys.executable, "-c", code, pg_dsn], stdout=subprocess.PIPE, text=True,
                              env=env(), cwd=ROOT)
    lease = pg_cluster.PostgresLease(pg_dsn, "siem")
    try:
        assert holder.stdout.readline().strip() == "held"
        assert not lease.held()
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(10)
        started = time.monotonic()
        wait_for(lease.held, timeout=15, what="the lease to be taken over", interval=0.2)
        assert time.monotonic() - started < 15
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)
        lease.release()


def test_cursor_is_shared_and_never_moves_back(pg_dsn):
    _migrated(pg_dsn)
    first, second = pg_cluster.PostgresCursorStore(pg_dsn, "siem"), pg_cluster.PostgresCursorStore(pg_dsn, "siem")
    try:
        assert first.load() == {}
        first.save({"c1": 10, "c2": 4})
        assert second.load() == {"c1": 10, "c2": 4}
        second.save({"c1": 7, "c3": 1})      # a late save of an older position
        assert first.load() == {"c1": 10, "c2": 4, "c3": 1}
        assert pg_cluster.PostgresCursorStore(pg_dsn, "other").load() == {}
    finally:
        first.close()
        second.close()


def test_heartbeats_list_collectors_and_who_serves_each_node(pg_dsn):
    _migrated(pg_dsn)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        pg_cluster.heartbeat(conn, "c1", "0.1.0", "127.0.0.1:7001", 1, [("web-1", "10.0.0.1", True, 5)])
        pg_cluster.heartbeat(conn, "c2", "0.1.0", "127.0.0.1:7002", 2, [("web-2", "10.0.0.2", True, 6)])
        # web-1 fails over to c2; c1 later reports it disconnected, which must not undo c2's claim.
        pg_cluster.heartbeat(conn, "c2", "0.1.0", "127.0.0.1:7002", 2,
                             [("web-1", "10.0.0.1", True, 9), ("web-2", "10.0.0.2", True, 9)])
        pg_cluster.heartbeat(conn, "c1", "0.1.0", "127.0.0.1:7001", 1, [("web-1", "10.0.0.1", False, 5)])
        collectors, nodes = pg_cluster.members(conn)
    assert [(c[0], c[2]) for c in collectors] == [("c1", "127.0.0.1:7001"), ("c2", "127.0.0.1:7002")]
    assert all(c[4] > 0 for c in collectors)
    assert nodes == [("web-1", "c2", "10.0.0.1", True, 9), ("web-2", "c2", "10.0.0.2", True, 9)]
