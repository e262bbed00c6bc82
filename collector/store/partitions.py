"""Time partitions of the SQLite store (docs/storage-model.md §3, §5): naming, the catalogue
rows, and a bounded pool of connections to partition files.

A partition holds the events of one tier and one period of event time, in its own file under
`data_dir/partitions/`. The main file's `partitions` table lists the live ones; a file that it does
not list does not exist (crash rule 3).
"""

from __future__ import annotations

import datetime as dt
import os
import pathlib
import sqlite3
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fleetlog.common.errors import StorageError

DAY_US = 86400 * 1_000_000
LEGACY_TIER = "legacy"          # a migrated single-file store: every tier and time, purged by rows
LEGACY_NAME = "legacy"
PARTITION_DIR = "partitions"
CATALOGUE_COLUMNS = ("id", "name", "tier", "period_start", "period_end", "min_seq", "max_seq",
                     "min_time", "max_time", "count")


def period_start(time_us: int, period_us: int) -> int:
    return time_us - time_us % period_us


def partition_name(tier: str, start_us: int, shard: int = 0) -> str:
    """`general-20260101T0000`: tier and period start (UTC); sorts by time within a tier. Writer
    shards after the first add `-s1`, `-s2` ... (shard 0 keeps the name of a store without shards,
    so a data_dir needs no migration when `writer_shards` changes)."""
    start = dt.datetime.fromtimestamp(start_us / 1e6, dt.UTC)
    return f"{tier}-{start:%Y%m%dT%H%M}" + (f"-s{shard}" if shard else "")


def partition_dir(main_path: str | os.PathLike[str]) -> pathlib.Path:
    return pathlib.Path(main_path).parent / PARTITION_DIR


def partition_path(main_path: str | os.PathLike[str], name: str) -> pathlib.Path:
    return partition_dir(main_path) / f"{name}.db"


def remove_partition_file(path: str | os.PathLike[str]) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            os.unlink(f"{path}{suffix}")
        except FileNotFoundError:
            pass


@dataclass
class Partition:
    """One catalogue row (committed state of the main file)."""

    id: int
    name: str
    tier: str
    period_start: int
    period_end: int
    min_seq: int
    max_seq: int
    min_time: int
    max_time: int
    count: int

    @property
    def legacy(self) -> bool:
        return self.tier == LEGACY_TIER


def read_catalogue(conn: sqlite3.Connection) -> list[Partition]:
    return [Partition(*row) for row in conn.execute(
        f"SELECT {', '.join(CATALOGUE_COLUMNS)} FROM partitions ORDER BY min_time, id")]


class ConnectionPool:
    """Connections to partition files, the most recently used `size` kept open. A connection per
    file (never ATTACH: at most 10 databases attach to one connection)."""

    def __init__(self, main_path: str, opener: Callable[[str], sqlite3.Connection], size: int = 16):
        self.main_path = main_path
        self.opener = opener
        self.size = size
        self._open: OrderedDict[Any, sqlite3.Connection] = OrderedDict()
        self._held: dict[Any, int] = {}

    def get(self, name: str, create: bool = False, key: Any = None) -> sqlite3.Connection | None:
        """The connection to partition `name`; None when its file is gone (dropped meanwhile),
        unless `create` (the writer, for a new partition). `key` (default: the name) is what the
        connection is kept under: readers use the catalogue id too, since a dropped day that a
        late event brings back is a new file under the old name."""
        key = name if key is None else key
        conn = self._open.get(key)
        if conn is not None:
            self._open.move_to_end(key)
            return conn
        path = partition_path(self.main_path, name)
        if not create and not path.exists():
            return None
        try:
            conn = self.opener(str(path))
        except sqlite3.Error as exc:
            raise StorageError(f"{path}: cannot open the partition: {exc}") from exc  # see sqlite_util.connect
        self._open[key] = conn
        return conn

    def trim(self) -> None:
        """Close the least recently used beyond `size`, except those in use (the writer trims
        after commit; a paused search holds its partitions with `hold`)."""
        for name in list(self._open):
            if len(self._open) <= self.size:
                break
            if self._held.get(name):
                continue
            self._open.pop(name).close()

    def hold(self, names: list[Any], delta: int) -> None:
        """Mark partitions in use (+1) or done (-1): a search paused between pages keeps its
        cursors while the same reader serves other requests."""
        for name in names:
            count = self._held.get(name, 0) + delta
            if count > 0:
                self._held[name] = count
            else:
                self._held.pop(name, None)

    def names(self) -> list[Any]:
        return list(self._open)

    def forget(self, name: Any) -> None:
        conn = self._open.pop(name, None)
        if conn is not None:
            conn.close()

    def close(self) -> None:
        for conn in self._open.values():
            conn.close()
        self._open.clear()
