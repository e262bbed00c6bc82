"""Insert rate as the store grows (issue 21): the writer's own path (`SqliteStore.store_batch`:
dedup, chain, partition rows and full-text index, synchronous = full, 10,000 events per
transaction) into a store that already holds 0, 10 million and 50 million events.

Events go to the partition of their tier and day, so the indexes an insert updates are the hot
partition's, whatever the store holds; this section shows that the rate does not fall as the
store grows. The stores are built quickly: one day of 1,000,000 events is written once through
the store, and the older days are that partition file linked under each day's name (hard links:
no copy on disk) and listed in the main file's catalogue, as the writer lists the partitions it
creates. The writer never writes to an old day; it opens and checks each one at start.

    python bench/run.py --only insert-rate [--insert-sizes 0,10000000,50000000]
"""

from __future__ import annotations

import os
import sqlite3
import statistics
import time

from bench.common import BenchContext, Row
from fleetlog.collector.store import IncomingEvents
from fleetlog.collector.store.partitions import partition_name, partition_path
from fleetlog.collector.store.sqlite import SqliteStore
from fleetlog.common.timefmt import now_us

DAY_US = 86400 * 1_000_000
DAY_EVENTS = 1_000_000
CHUNK = 2_000
PER_TRANSACTION = 5            # chunks: 10,000 events per transaction
MEASURED = 300_000             # events inserted and timed at each size, in ROUNDS rounds
ROUNDS = 5
MESSAGE = "req=r{0:05d} user=user{1}@example.com Authentication SUCCESS via LDAP seq={2:09d}"


def _chunk(source_key: str, first: int, count: int, time_us: int) -> IncomingEvents:
    positions = range(first, first + count)
    return IncomingEvents(
        host="web-1", host_ip="10.0.0.1", source_key=source_key, source="file:/var/log/app/app.log",
        namespace="default", log_type="application", position=positions,
        time_us=[time_us + i for i in positions], level=bytes([6]) * count,
        message=[MESSAGE.format(i % 9973, i % 97, i) for i in positions],
        request_id=[f"r{i % 9973:05d}" for i in positions], user=[f"user{i % 97}@example.com" for i in positions],
        action=[""] * count, app=["shop"] * count, pid=[1000] * count, fields_json=[""] * count,
        flags=bytes(count), tier=["general"] * count)


def _insert(store: SqliteStore, source_key: str, events: int, time_us: int) -> float:
    """Seconds to insert `events` through store_batch."""
    started = time.perf_counter()
    for first in range(0, events, CHUNK * PER_TRANSACTION):
        store.store_batch([_chunk(source_key, f, min(CHUNK, events - f), time_us)
                           for f in range(first, min(events, first + CHUNK * PER_TRANSACTION), CHUNK)], now_us())
    return time.perf_counter() - started


def build_day(folder: str, today: int) -> str:
    """One day of DAY_EVENTS events, written through the store; returns its partition file."""
    main = os.path.join(folder, "events.db")
    store = SqliteStore(main, "normal", collector="bench-collector")
    _insert(store, "old", DAY_EVENTS, today - 2 * DAY_US)
    [part] = store.partitions()
    store.close()
    return str(partition_path(main, part.name))


def _store_holding(folder: str, template: str, events: int, today: int) -> str:
    """A store whose catalogue lists `events // DAY_EVENTS` old days, each the template file."""
    main = os.path.join(folder, "events.db")
    SqliteStore(main, "full", collector="bench-collector").close()   # the schema
    days = events // DAY_EVENTS
    conn = sqlite3.connect(main, isolation_level=None)
    try:
        conn.execute("BEGIN")
        origin = conn.execute("INSERT INTO origins(host, source_key) VALUES ('web-1', 'old') RETURNING id").fetchone()[0]
        for day in range(days):
            start = today - (day + 3) * DAY_US
            name = partition_name("general", start)
            target = partition_path(main, name)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(template, target)
            part = conn.execute(
                "INSERT INTO partitions(name, tier, period_start, period_end, min_seq, max_seq, min_time, max_time,"
                " count) VALUES (?, 'general', ?, ?, 1, ?, ?, ?, ?) RETURNING id",
                (name, start, start + DAY_US, DAY_EVENTS, start, start + DAY_US - 1, DAY_EVENTS)).fetchone()[0]
            conn.execute("INSERT INTO partition_origins VALUES (?, ?, 0, ?)", (part, origin, DAY_EVENTS))
            conn.execute("INSERT INTO partition_namespaces VALUES (?, 'default', ?)", (part, DAY_EVENTS))
        if days:
            conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('last_seq', ?)", (str(DAY_EVENTS),))
        conn.execute("COMMIT")
    finally:
        conn.close()
    return main


def run(ctx: BenchContext) -> list[Row]:
    sizes = [int(s) for s in str(ctx.results.get("insert_sizes") or "0,10000000,50000000").split(",")]
    started_us = now_us()
    today = started_us - started_us % DAY_US
    started = time.monotonic()
    template = build_day(str(ctx.work / "insert-template"), today)
    print(f"   built one day of {DAY_EVENTS:,} events in {time.monotonic() - started:.0f} s", flush=True)
    stores: dict[int, SqliteStore] = {}
    opened: dict[int, float] = {}
    for size in sizes:
        main = _store_holding(str(ctx.work / f"insert-{size}"), template, size, today)
        began = time.perf_counter()
        stores[size] = SqliteStore(main, "full", collector="bench-collector")
        opened[size] = time.perf_counter() - began
    # Round-robin, so the machine's load (shared, it varies minute to minute) weighs on every
    # size alike; the median round per size is reported.
    rates: dict[int, list[float]] = {size: [] for size in sizes}
    for round_ in range(ROUNDS):
        for size in sizes:
            seconds = _insert(stores[size], f"live-{round_}", MEASURED // ROUNDS, today + 3_600_000_000)
            rates[size].append(MEASURED // ROUNDS / seconds)
    rows = []
    for size in sizes:
        held = sum(p.count for p in stores[size].partitions())
        stores[size].close()
        median = statistics.median(rates[size])
        rows.append(Row(f"insert rate with {size:,} events stored (store_batch, 10,000 per transaction, "
                        "synchronous = full)", f"{median:,.0f} events/s (median of {ROUNDS} rounds; store holds "
                        f"{held:,}; opened in {opened[size] * 1000:.0f} ms)"))
    if len(sizes) > 1:
        ratio = statistics.median(rates[sizes[-1]]) / statistics.median(rates[sizes[0]])
        rows.append(Row("insert rate at the largest size / at the smallest", f"{ratio:.2f}",
                        ">= 0.8 (inserts do not slow down as the store grows)", ratio >= 0.8))
    return rows
