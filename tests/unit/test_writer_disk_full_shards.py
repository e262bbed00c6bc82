"""A disk that fills at any point of a transaction of several partition files (issue 27, item 1).

The partition files of one transaction (here two tiers: two files of one day) commit first, the
main file (the commit record) last. A disk that fills after one file committed left that file's
events in it: they could not be deleted either (the disk was full), so every retry of the batch
failed with `UNIQUE constraint failed: events.seq`, for ever (with blocks it would store the seqs
twice). Here the disk fills at a seeded random point of each transaction (the blocks of file 0
or 1, a file's commit, the main file's part, its commit) and stays full, for every write of every file, until it is freed; then each held batch must be
stored exactly once, with no restart, the chain verifying. The seed is printed; rerun one with
FLEETLOG_TEST_SEED=<seed>.
"""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fleetlog.collector.signing import Signer
from fleetlog.collector.store.sqlite import SqliteStore
from fleetlog.collector.store.sqlite_bulk import PartitionConnection
from fleetlog.collector.store.sqlite_verify import verify_db
from fleetlog.collector.writer import StorageWriter
from fleetlog.common.errors import StorageError
from fleetlog.common.timefmt import now_us
from tests.bounded import run_bounded
from tests.unit.store_helpers import event_count, event_rows, incoming

DAY = 86400 * 1_000_000
NOW = now_us()
ROUNDS = 12
POINTS = ("insert", "commit", "main-part", "main-commit")


def _full() -> sqlite3.OperationalError:
    error = sqlite3.OperationalError("database or disk is full")
    error.sqlite_errorcode = 13
    error.sqlite_errorname = "SQLITE_FULL"
    return error


def _shard(conn: Any) -> int:
    """Which of the transaction's two files a partition connection is: 1 for the security tier's."""
    [(_, _, path)] = [row for row in sqlite3.Connection.execute(conn, "PRAGMA database_list") if row[1] == "main"]
    return int(os.path.basename(path).startswith("security-"))


class Disk:
    """The store's disk: fills when the armed point of a transaction is reached, then every write
    (inserts, commits of every file, including deletes) fails with SQLITE_FULL until `free()`.
    Rollbacks and reads go on, as on a real full disk."""

    def __init__(self) -> None:
        self.point: tuple[str, int, int] | None = None   # (kind, file, nth call of that kind)
        self.calls: dict[tuple[str, int], int] = {}
        self.full = False
        self.failures = 0

    def arm(self, kind: str, shard: int, nth: int) -> None:
        self.point, self.calls, self.full = (kind, shard, nth), {}, False

    def free(self) -> None:
        self.point, self.full = None, False

    def write(self, kind: str, shard: int = 0) -> None:
        """Raise SQLITE_FULL if the disk is full, or fills at this write."""
        if not self.full and self.point is not None:
            key = (kind, shard)
            self.calls[key] = self.calls.get(key, 0) + 1
            if self.point == (kind, shard, self.calls[key]):
                self.full = True
        if self.full:
            self.failures += 1
            raise _full()


class MainFile:
    """The store's main-file connection, whose COMMIT writes to the disk."""

    def __init__(self, conn: sqlite3.Connection, disk: Disk):
        self._conn, self._disk = conn, disk

    def execute(self, sql: str, *args: Any) -> Any:
        if sql == "COMMIT":
            self._disk.write("main-commit")
        return self._conn.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


@pytest.fixture
def disk(monkeypatch) -> Disk:
    disk = Disk()
    insert, commit = PartitionConnection.insert_blocks, PartitionConnection.commit_batch

    def insert_blocks(self, blocks):
        disk.write("insert", _shard(self))
        return insert(self, blocks)

    def commit_batch(self):
        disk.write("commit", _shard(self))
        return commit(self)

    def execute(self, sql, *args):
        if sql == "COMMIT":      # the writer's own statements on a partition: deletes, repairs
            disk.write("commit", _shard(self))
        return sqlite3.Connection.execute(self, sql, *args)

    monkeypatch.setattr(PartitionConnection, "insert_blocks", insert_blocks)
    monkeypatch.setattr(PartitionConnection, "commit_batch", commit_batch)
    monkeypatch.setattr(PartitionConnection, "execute", execute)
    return disk


def _batch(rng: random.Random, source: str, first: int, count: int, day: int) -> list:
    """Two chunks of one source at consecutive positions, on day `day` before today; source "b"
    is of the security tier (the transaction's second file)."""
    base = NOW - NOW % DAY - day * DAY + 3_600_000_000
    half = rng.randrange(1, count)
    tier = "security" if source == "b" else "general"
    return [incoming("web-1", source, list(range(start, end)), time_us=[base + p for p in range(start, end)],
                     messages=[f"{source} {p}" for p in range(start, end)], tier=tier)
            for start, end in ((first, first + half), (first + half, first + count))]


async def _until(check, what: str, seed: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"seed={seed}: timed out waiting for {what}"
        await asyncio.sleep(0.01)


def test_a_disk_full_at_any_point_of_a_transaction_of_two_files_heals_without_restart_and_stores_once(tmp_path, disk):
    seed = int(os.environ.get("FLEETLOG_TEST_SEED") or random.randrange(2**32))
    print(f"FLEETLOG_TEST_SEED={seed}")
    rng = random.Random(seed)
    key = Ed25519PrivateKey.generate()
    store = SqliteStore(tmp_path / "events.db", "normal", collector="c1")
    Signer(key, "c1", 300).attach(store)
    signed = store.checkpointer
    assert signed is not None

    def checkpointer(first, links, last):    # the main file's part of the transaction
        disk.write("main-part")
        return signed(first, links, last)

    store.checkpointer = checkpointer
    store.conn = MainFile(store.conn, disk)  # type: ignore[assignment]
    writer = StorageWriter(store)
    expected: dict[str, int] = {}

    async def scenario() -> list[str]:
        done = []
        for round_ in range(ROUNDS):
            point = (rng.choice(POINTS), rng.randrange(2), rng.randrange(1, 3))
            if point[0].startswith("main"):
                point = (point[0], 0, 1)
            disk.arm(*point)
            # Two sources in one group; a new day's partitions now and then (files the failed
            # transaction creates).
            day = rng.choice([0, 0, round_ + 1])
            batches = []
            for source in ("a", "b"):
                count = rng.randrange(150, 500)
                batches.append(_batch(rng, source, expected.get(source, 0), count, day))
                expected[source] = expected.get(source, 0) + count
            futures = [asyncio.ensure_future(writer.submit(b)) for b in batches]
            await _until(lambda futures=futures: writer.fault is not None or all(f.done() for f in futures),
                         f"round {round_} ({point}) to fail or commit", seed)
            if writer.fault is not None:
                assert "full" in writer.fault, f"seed={seed} round {round_} {point}: {writer.fault}"
                assert not any(f.done() for f in futures), f"seed={seed} round {round_} {point}: acknowledged while full"
                failed = disk.failures
                await _until(lambda failed=failed: disk.failures > failed, "a retry while still full", seed)
            disk.free()
            results = await asyncio.wait_for(asyncio.gather(*futures), 30)
            stored = [sum(r.stored for r in result) for result in results]
            assert stored == [sum(len(c) for c in b) for b in batches], f"seed={seed} round {round_} {point}"
            assert writer.fault is None, f"seed={seed} round {round_} {point}: {writer.fault}"
            done.append(f"{point}")
        # The writer takes new batches as before.
        [after] = await asyncio.wait_for(writer.submit([incoming("web-2", "c", [1, 2, 3])]), 30)
        assert after.stored == 3
        return done

    try:
        run_bounded(scenario(), timeout=150)
    finally:
        writer.stop()
    total = sum(expected.values()) + 3
    # Every event once: every row in the files (also past the committed head) is a committed one,
    # seqs gapless, each (source, position) once.
    rows = event_rows(store, "SELECT seq, source, pos FROM events")
    assert sorted(r[0] for r in rows) == list(range(1, total + 1)), f"seed={seed}"
    by_source = {s: sorted(r[2] for r in rows if r[1] == f"file:/{s}") for s in ("a", "b")}
    assert by_source == {s: list(range(n)) for s, n in expected.items()}, f"seed={seed}"
    assert store.last_seq == total
    # No partition file left that the catalogue does not list.
    listed = {part.name for part in store.partitions()}
    assert {p.stem for p in (tmp_path / "partitions").glob("*.db")} == listed, f"seed={seed}"
    Signer(key, "c1", 300).checkpoint_head(store)
    store.conn = store.conn._conn
    store.close()
    assert verify_db(str(tmp_path), key.public_key()).events == total, f"seed={seed}"


def test_a_purge_step_whose_rows_could_not_be_deleted_is_finished_once_and_counted_once(tmp_path, disk):
    """Same class: a purge step commits its record in the main file, then deletes the rows from
    the partition; when the disk filled in between, the rows stayed, the retried step found them
    again and counted them twice (the catalogue's counts below the rows really there)."""
    store = SqliteStore(tmp_path / "events.db", "normal", collector="c1")
    store.store_batch([incoming("web-1", "a.log", list(range(100)))], 1)
    disk.arm("commit", 0, 1)                     # the partition's delete cannot commit
    with pytest.raises(StorageError, match="disk is full"):
        store.delete_events(list(range(1, 11)))
    with pytest.raises(StorageError, match="disk is full"):   # still full: nothing else writes
        store.store_batch([incoming("web-1", "a.log", [100])], 2)
    disk.free()
    assert store.delete_events(list(range(1, 11))).count == 0      # already deleted: the retry finds none
    store.store_batch([incoming("web-1", "a.log", [100])], 2)
    assert sum(p.count for p in store.partitions()) == event_count(store) == 91
    assert sorted(seq for (seq,) in event_rows(store, "SELECT seq FROM events")) == list(range(11, 102))
    store.close()
    again = SqliteStore(tmp_path / "events.db", "normal", collector="c1")
    assert sum(p.count for p in again.partitions()) == event_count(again) == 91
    again.close()
