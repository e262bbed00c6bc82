"""Hostile event times against the PostgreSQL store (issue 27, item 7): a batch on 1,500 distinct
days creates the day partitions of the 32 newest only, not 1,500 tables, and every event is stored
once."""

from __future__ import annotations

import psycopg

from fleetlog.collector.store.pg_schema import DAY_US, day_start, partition_name
from fleetlog.common.timefmt import now_us
from tests.harness import Cluster, search_json
from tests.hostile_peer import batch, exchange, hello, hostile_times_chunk, run

MAX_BATCH_PERIODS = 32      # [ingest] max_batch_periods by default


def _day_tables(dsn: str) -> set[str]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                            " JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname LIKE 'events_%' AND c.relkind = 'r'").fetchall()
    return {name for (name,) in rows}


def test_a_batch_on_1500_days_creates_a_bounded_number_of_partition_tables(tmp_path, pg_dsn):
    cluster = Cluster(tmp_path)
    try:
        collector = cluster.collector(storage={"backend": "postgresql", "dsn": pg_dsn})
        before = _day_tables(pg_dsn)
        now = now_us()
        hostile = hostile_times_chunk(now, 1500)
        replies, code, details = run(exchange(collector.address, [hello("hostile"), batch(1, [hostile])]),
                                     timeout=120)
        assert code is None, (code, details)
        assert [(r.stored, r.error) for r in replies] == [(len(hostile.position), "")]
        created = _day_tables(pg_dsn) - before
        newest_days = {partition_name("general", day_start(now - k * DAY_US)) for k in range(1, MAX_BATCH_PERIODS + 1)}
        assert created == newest_days - before
        assert len(created) == MAX_BATCH_PERIODS
        stored = search_json(collector, "--source", "file:/hostile-times.log")
        assert sorted(e["message"] for e in stored) == sorted(hostile.message)
        assert sum(1 for e in stored if (e.get("fields") or {}).get("time_adjusted")) == \
            len(hostile.position) - MAX_BATCH_PERIODS
    finally:
        cluster.stop_all()
