"""The PostgreSQL store's write path: exactly once across collectors sharing one database, one
gapless chain per collector, events routed into their tier's day partition."""

from __future__ import annotations

import threading

import psycopg

from fleetlog.collector.store.postgres import PostgresStore
from fleetlog.common import chain
from tests.unit.store_helpers import incoming

DAY0 = 1_764_547_200_000_000          # 2025-12-01 00:00 UTC


def _times(positions: list[int]) -> list[int]:
    return [DAY0 + p * 1_000_000 for p in positions]


def _batch(host: str, positions: list[int], **kw):
    return incoming(host, "app.log", positions, time_us=_times(positions), **kw)


def _rows(dsn: str, sql: str, params=()) -> list[tuple]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def test_a_batch_is_stored_once_and_duplicates_counted(pg_dsn):
    store = PostgresStore(pg_dsn, "c1")
    try:
        assert store.created
        first = store.store_batch([_batch("web-1", [1, 2, 3])], DAY0)
        assert (first[0].stored, first[0].duplicates, first[0].first_seq, first[0].last_seq) == (3, 0, 1, 3)
        again = store.store_batch([_batch("web-1", [2, 3, 4]), _batch("web-1", [4, 5])], DAY0)
        assert [(r.stored, r.duplicates) for r in again] == [(1, 2), (1, 1)]
        assert (again[0].first_seq, again[1].last_seq) == (4, 5)
    finally:
        store.close()
    rows = _rows(pg_dsn, "SELECT chain, seq, pos, message FROM events ORDER BY seq")
    assert rows == [("c1", i, i, f"line {i}") for i in range(1, 6)]
    reopened = PostgresStore(pg_dsn, "c1")
    try:
        assert not reopened.created and reopened.last_seq == 5
    finally:
        reopened.close()


def test_events_land_in_their_tier_and_day_partition(pg_dsn):
    store = PostgresStore(pg_dsn, "c1")
    try:
        store.store_batch([incoming("web-1", "a.log", [1], time_us=[DAY0 + 5]),
                           incoming("web-1", "b.log", [1], time_us=[DAY0 + 86_400_000_000 + 5], tier="security"),
                           incoming("web-1", "c.log", [1], time_us=[DAY0 - 1], tier="permanent")], DAY0)
    finally:
        store.close()
    assert _rows(pg_dsn, "SELECT tableoid::regclass::text, seq FROM events ORDER BY seq") == [
        ("events_general_20251201", 1), ("events_security_20251202", 2), ("events_permanent", 3)]


def test_the_chain_links_what_was_stored(pg_dsn):
    store = PostgresStore(pg_dsn, "c1")
    try:
        store.store_batch([_batch("web-1", [1, 2])], DAY0)
        store.store_batch([_batch("web-1", [3])], DAY0)
        head = store.chain_head
    finally:
        store.close()
    columns = ", ".join(f'"{k}"' for k in chain.CANONICAL_KEYS)
    link = chain.GENESIS
    for row in _rows(pg_dsn, f"SELECT {columns}, hash FROM events ORDER BY seq"):
        link = chain.extend(link, chain.canonical_values(row[:-1]))
        assert bytes(row[-1]) == link
    assert link == head
    assert _rows(pg_dsn, "SELECT last_seq, head FROM chains") == [(3, head)]


def test_two_collectors_storing_the_same_batches_at_once_store_each_event_once(pg_dsn):
    """Both collectors receive every batch (an agent re-sending to the other after a failover):
    each event is stored exactly once in the cluster, and each chain stays gapless."""
    stores = [PostgresStore(pg_dsn, "c1"), PostgresStore(pg_dsn, "c2")]
    batches = [[_batch(f"web-{h}", list(range(start, start + 200)))] for start in range(1, 4001, 200)
               for h in (1, 2)]
    stored = [0, 0]
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            order = batches if index == 0 else list(reversed(batches))
            for batch in order:
                stored[index] += sum(r.stored for r in stores[index].store_batch(batch, DAY0))
        except BaseException as exc:  # noqa: BLE001 — reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in (0, 1)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert not any(t.is_alive() for t in threads)
    finally:
        for store in stores:
            store.close()
    assert not errors, errors
    assert sum(stored) == 8000 and min(stored) > 0, stored
    assert _rows(pg_dsn, "SELECT count(*), count(DISTINCT (host, pos)) FROM events") == [(8000, 8000)]
    for name, count in zip(("c1", "c2"), stored):
        assert _rows(pg_dsn, "SELECT count(*), coalesce(min(seq), 0), coalesce(max(seq), 0) FROM events"
                     " WHERE chain = %s", (name,)) == [(count, 1 if count else 0, count)]


def test_partitions_are_kept_ahead_of_the_clock(pg_dsn):
    """A collector running for days creates each coming day's partitions before its events."""
    later = DAY0 + 30 * 86_400_000_000
    store = PostgresStore(pg_dsn, "c1")
    try:
        store.store_batch([_batch("web-1", [1])], later)
    finally:
        store.close()
    names = {n for (n,) in _rows(pg_dsn, "SELECT tablename FROM pg_tables WHERE tablename LIKE %s", ("events_general_%",))}
    assert {"events_general_20251231", "events_general_20260103"} <= names


def test_a_key_claimed_by_another_collector_meanwhile_is_a_duplicate(pg_dsn):
    """The fast claim (look up, COPY) meets a key another collector inserted but has not yet
    committed: the COPY waits for that commit, the unique key refuses it, and the batch is stored
    the careful way — the contested event once, the rest stored."""
    store = PostgresStore(pg_dsn, "c1")
    other = psycopg.connect(pg_dsn)
    try:
        store.store_batch([_batch("web-1", [1])], DAY0)
        origin = _rows(pg_dsn, "SELECT origin FROM events")[0][0]
        other.execute("INSERT INTO event_keys(origin, pos) VALUES (%s, 5)", (origin,))   # not committed yet
        results: list = []
        worker = threading.Thread(target=lambda: results.extend(store.store_batch([_batch("web-1", [2, 3, 4, 5, 6])],
                                                                                  DAY0)))
        worker.start()
        worker.join(0.5)
        assert worker.is_alive()          # waiting for the other transaction's key
        other.commit()
        worker.join(30)
        assert [(r.stored, r.duplicates) for r in results] == [(4, 1)]
        assert [p for (p,) in _rows(pg_dsn, "SELECT pos FROM events ORDER BY seq")] == [1, 2, 3, 4, 6]
    finally:
        other.close()
        store.close()
