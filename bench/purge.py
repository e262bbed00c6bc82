"""Retention purge under load: N expired events written directly through the storage layer, then
one purge (the collector's RetentionScheduler and single writer, synchronous = full) while a
steady ingest of 10,000 events/s goes through the same writer. Reports the purge's duration and
the longest ingest pause — the slowest batch from submit to commit — against the 1 s target
(contract §4.6), with the same ingest's slowest batch before the purge for comparison.

    python bench/run.py --only purge [--purge-events N]
"""

from __future__ import annotations

import asyncio
import time

from bench.common import BenchContext, Row
from fleetlog.collector.config import CollectorConfig, RetentionConfig
from fleetlog.collector.retention import RetentionScheduler
from fleetlog.collector.store import IncomingEvents
from fleetlog.collector.store.sqlite import SqliteReader, SqliteStore
from fleetlog.collector.writer import StorageWriter
from fleetlog.common.timefmt import now_us

DAY_US = 86400 * 1_000_000
CHUNK = 5000
INGEST_BATCH = 200            # events per ingest batch
INGEST_INTERVAL = 0.02        # seconds between batches: 10,000 events/s
MESSAGE = "req=r{0:05d} user=user{1}@example.com Authentication SUCCESS via LDAP seq={2:09d}"


def _events(source_key: str, first: int, count: int, time_us: int, step_us: int) -> IncomingEvents:
    positions = range(first, first + count)
    return IncomingEvents(
        host="web-1", host_ip="10.0.0.1", source_key=source_key, source="file:/var/log/app/app.log",
        namespace="default", log_type="application", position=positions,
        time_us=[time_us + (i - first) * step_us for i in positions], level=bytes([6]) * count,
        message=[MESSAGE.format(i % 9973, i % 97, i) for i in positions],
        request_id=[f"r{i % 9973:05d}" for i in positions], user=[f"user{i % 97}@example.com" for i in positions],
        action=[""] * count, app=["shop"] * count, pid=[1000] * count, fields_json=[""] * count,
        flags=bytes(count), tier=["general"] * count)


def build_expired(path: str, events: int) -> float:
    """`events` general-tier events 100 to 40 days old (retention 30d expires all of them)."""
    started = time.monotonic()
    store = SqliteStore(path, "normal", collector="bench-collector")
    base, span = now_us() - 100 * DAY_US, 60 * DAY_US
    step = max(1, span // max(events, 1))
    for first in range(0, events, CHUNK * 10):
        store.store_batch([_events("old", f, min(CHUNK, events - f), base + f * step, step)
                           for f in range(first, min(events, first + CHUNK * 10), CHUNK)], now_us())
    store.close()
    return time.monotonic() - started


async def _steady_ingest(writer: StorageWriter, stop: asyncio.Event, latencies: list[float],
                         start_pos: int) -> int:
    pos = start_pos
    loop = asyncio.get_running_loop()
    next_at = loop.time()
    pending: set[asyncio.Task] = set()

    async def one(batch: IncomingEvents) -> None:
        started = time.perf_counter()
        await writer.submit([batch])
        latencies.append(time.perf_counter() - started)

    while not stop.is_set():
        task = asyncio.create_task(one(_events("live", pos, INGEST_BATCH, now_us(), 1)))
        pending.add(task)
        task.add_done_callback(pending.discard)
        pos += INGEST_BATCH
        next_at += INGEST_INTERVAL
        await asyncio.sleep(max(0.0, next_at - loop.time()))
    await asyncio.gather(*pending)
    return pos


async def _measure(path: str) -> dict[str, float]:
    store = SqliteStore(path, "full", collector="bench-collector")
    writer = StorageWriter(store)
    config = CollectorConfig(node_name="bench-collector",
                             retention=RetentionConfig(general=30 * 86400.0, purge_interval=3600.0))
    purged = [0]
    scheduler = RetentionScheduler(config, lambda: SqliteReader(path), writer, on_purged=lambda tier, n: purged.__setitem__(0, purged[0] + n))
    try:
        # A baseline: the same ingest for 3 s with no purge running.
        before: list[float] = []
        stop = asyncio.Event()
        ingest = asyncio.create_task(_steady_ingest(writer, stop, before, 0))
        await asyncio.sleep(3.0)
        stop.set()
        next_pos = await ingest

        during: list[float] = []
        stop = asyncio.Event()
        ingest = asyncio.create_task(_steady_ingest(writer, stop, during, next_pos))
        started = time.monotonic()
        await scheduler.purge_once()
        duration = time.monotonic() - started
        stop.set()
        await ingest
    finally:
        await scheduler.stop()
        await asyncio.to_thread(writer.stop)
        store.close()
    return {"duration": duration, "purged": purged[0], "max_before": max(before, default=0.0),
            "max_during": max(during, default=0.0), "batches_during": len(during)}


def run(ctx: BenchContext) -> list[Row]:
    events = int(ctx.results.get("purge_events", 1_000_000))
    path = str(ctx.work / "purge" / "events.db")
    build_seconds = build_expired(path, events)
    print(f"   built {events:,} expired events in {build_seconds:.0f} s", flush=True)
    m = asyncio.run(_measure(path))
    assert m["purged"] == events, f"purged {m['purged']} of {events} expired events"
    rate = events / m["duration"] if m["duration"] else 0.0
    return [
        Row(f"retention purge of {events:,} expired events (10,000 events/s ingest running)",
            f"{m['duration']:.1f} s ({rate:,.0f} events/s)"),
        Row("longest ingest pause during the purge (slowest batch, submit -> commit)",
            f"{m['max_during'] * 1000:.0f} ms over {m['batches_during']:,} batches "
            f"(without purge: {m['max_before'] * 1000:.0f} ms)", "< 1 s", m["max_during"] < 1.0),
    ]
