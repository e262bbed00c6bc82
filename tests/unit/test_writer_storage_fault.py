"""The storage writer on a store that cannot grow (issue 20): a real SQLITE_FULL (SQLite's
max_page_count), batches held and retried instead of failed, one line when it starts and one
when it ends, other write jobs refused at once, everything committed once the limit is raised."""

from __future__ import annotations

import asyncio
import logging
import random

import pytest

from fleetlog.collector.store.sqlite import SqliteStore
from fleetlog.collector.writer import StorageWriter
from fleetlog.common.errors import StorageError
from tests.bounded import run_bounded
from tests.unit.store_helpers import event_count, incoming


def test_a_full_store_holds_batches_and_commits_them_once_it_can_grow(tmp_path, caplog):
    store = SqliteStore(str(tmp_path / "events.db"), "normal", collector="c1")
    store.store_batch([incoming("web-1", "a.log", list(range(10)))], 1)
    # Every file of the store (the main file and the partition these events go to) stops growing.
    files = [store.conn] + [store.partition_conn(part.name) for part in store.partitions()]

    def limit(pages: int | None = None) -> None:
        """max_page_count is per connection: the writer's connections to the files get it."""
        for conn in files:
            conn.execute(f"PRAGMA max_page_count={pages or conn.execute('PRAGMA page_count').fetchone()[0]}")
    limit()
    writer = StorageWriter(store)

    async def scenario() -> list[int]:
        # Random text: blocks compress what repeats, and these must not fit in the full files.
        big = [random.Random(i).randbytes(1500).hex() for i in range(200)]
        first = asyncio.ensure_future(writer.submit([incoming("web-1", "a.log", list(range(10, 210)), messages=big)]))
        second = asyncio.ensure_future(writer.submit([incoming("web-2", "b.log", list(range(50)))]))
        while writer.fault is None:
            await asyncio.sleep(0.01)
        assert "database or disk is full" in writer.fault
        with pytest.raises(StorageError, match="storage not writable"):
            await asyncio.wait_for(writer.call(lambda s: s.last_seq), 5)   # refused at once, no wait
        assert not first.done() and not second.done()
        limit(1_000_000)
        results = await asyncio.wait_for(asyncio.gather(first, second), 30)
        return [r.stored for batch in results for r in batch]

    try:
        with caplog.at_level(logging.DEBUG, logger="fleetlog.collector.writer"):
            assert run_bounded(scenario(), timeout=120) == [200, 50]
        assert writer.fault is None
        assert event_count(store) == 260
        levels = [(r.levelname, r.getMessage().split(",")[0].split(";")[0]) for r in caplog.records
                  if r.levelno >= logging.WARNING]
        assert levels == [("ERROR", "storage not writable"), ("WARNING", "storage writable again")]
    finally:
        writer.stop()
        store.close()
