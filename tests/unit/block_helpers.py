"""Looking at which blocks a store holds and which a reader decodes (tests of the block reader)."""

from __future__ import annotations

import pathlib
import sqlite3

from fleetlog.collector.store.sqlite_block_read import PartitionSnapshot
from fleetlog.collector.store.sqlite_blocks import headers


def all_headers(main_path) -> list:
    """The headers of every block of every partition file of a store."""
    found = []
    for file in (pathlib.Path(main_path).parent / "partitions").glob("*.db"):
        conn = sqlite3.connect(file)
        found += headers(conn)
        conn.close()
    return found


def opened_blocks(monkeypatch) -> list:
    """The headers of every block a reader decodes from now on (until monkeypatch.undo)."""
    opened: list = []
    columns = PartitionSnapshot.columns

    def recording(self, header):
        opened.append(header)
        return columns(self, header)
    monkeypatch.setattr(PartitionSnapshot, "columns", recording)
    return opened
