"""The embedded SQLite backend (collector.store.Backend): one chain, events in time partitions.

Layout, crash rule and migration: docs/storage-model.md §5. The writer (`SqliteStore`,
sqlite_writer.py) runs on one thread; readers (`SqliteReader`, sqlite_reader.py) open their own
connections, one per thread, which WAL lets run beside the writer.
"""

from __future__ import annotations

import os
import pathlib
from typing import Any

from fleetlog.collector.store import (
    Cursor,
    DeleteResult,
    anchors_digest,
    row_to_event,
)
from fleetlog.collector.store.sqlite_reader import SqliteReader
from fleetlog.collector.store.sqlite_settings import SqliteSettings
from fleetlog.collector.store.sqlite_util import CHAIN, store_bytes  # noqa: F401 — re-exported
from fleetlog.collector.store.sqlite_writer import DEFAULT_PERIOD_S, SqliteStore


class _CursorFileStore:
    """A forwarder cursor in a file under data_dir/forwarders (collector/forward/cursor.py), with
    the file format of one chain: {"seq": N}."""

    def __init__(self, file: Any):
        self.file = file

    def load(self) -> Cursor:
        seq = self.file.load()
        return {CHAIN: seq} if seq else {}

    def save(self, cursor: Cursor) -> None:
        self.file.save(cursor.get(CHAIN, 0))


class _LocalLease:
    """One collector owns an SQLite store, so it always holds every forwarder's lease."""

    def held(self) -> bool:
        return True

    def release(self) -> None:
        return None


class SqliteBackend:
    """The embedded store under data_dir (collector.store.Backend)."""

    def __init__(self, data_dir: str | os.PathLike[str], path: str = "events.db", synchronous: str = "full",
                 collector: str = "", partition_period: float = DEFAULT_PERIOD_S, writer_shards: int = 1,
                 query_timeout: float | None = None):
        self.data_dir = pathlib.Path(data_dir)
        self.query_timeout = query_timeout
        self.location = str(self.data_dir / path)
        self.writer = SqliteStore(self.location, synchronous, collector=collector, partition_period=partition_period,
                                  writer_shards=writer_shards)

    @property
    def created(self) -> bool:
        return self.writer.created

    def reader(self) -> SqliteReader:
        return SqliteReader(self.location, self.query_timeout)

    def cursor_store(self, forwarder: str) -> _CursorFileStore:
        from fleetlog.collector.forward.cursor import CursorFile  # the file format lives with the forwarders
        return _CursorFileStore(CursorFile(self.data_dir / "forwarders", forwarder))

    def lease(self, forwarder: str) -> _LocalLease:
        return _LocalLease()

    def settings_store(self) -> SqliteSettings:
        return SqliteSettings(self.location)

    def close(self) -> None:
        self.writer.close()


__all__ = ["DeleteResult", "SqliteBackend", "SqliteReader", "SqliteStore", "anchors_digest", "row_to_event"]
