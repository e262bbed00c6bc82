"""One partition file as a reader sees it: its blocks inside one read transaction.

Everything a reader takes from a partition — the block list, then the payloads of the blocks it
opens — comes from one snapshot, so a compaction that merges blocks meanwhile (one transaction:
insert the merged block, delete the old ones) is seen wholly before or wholly after, never half:
no row is lost or read twice. The snapshot starts with the first statement after BEGIN.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Any

import zstandard

from fleetlog.collector.store.block_columns import BlockColumns
from fleetlog.collector.store.blocks import BlockError, Run
from fleetlog.collector.store.sqlite_blocks import BlockHeader, payload
from fleetlog.common.errors import StorageError

Sieve = Callable[[BlockColumns, BlockHeader], "list[int] | None"]
_header_reader = zstandard.ZstdDecompressor()


class PartitionSnapshot:
    """Reads of one partition file in one read transaction; `close()` ends it (and closes the
    connection when it is the snapshot's own)."""

    def __init__(self, conn: sqlite3.Connection, name: str, own: bool = False):
        self.conn = conn
        self.name = name
        self.own = own
        if conn.in_transaction:     # a pooled connection whose last read ended by an error
            conn.execute("ROLLBACK")
        conn.execute("BEGIN")

    def rows(self, header: BlockHeader, sieve: Sieve | None = None) -> list[list[Any]]:
        """The rows (ROW_COLUMNS order, seq order; ids not filled in) of the block's events that
        `sieve` lets through (all when it says None), built from its columns (block_columns.py)."""
        columns = self.columns(header)
        try:
            among = None if sieve is None else sieve(columns, header)
            return columns.rows(among) if among is None or among else []
        except BlockError as exc:
            raise self._unreadable(header, exc) from None

    def columns(self, header: BlockHeader) -> BlockColumns:
        """The block's payload, its columns decoded when asked for."""
        try:
            return BlockColumns(self._payload(header))
        except BlockError as exc:
            raise self._unreadable(header, exc) from None

    def _unreadable(self, header: BlockHeader, exc: Exception) -> StorageError:
        return StorageError(f"partition {self.name}: block of seqs {header.min_seq}-{header.max_seq}: {exc}")

    def runs(self, header: BlockHeader) -> list[Run]:
        """The block's runs of consecutive seqs with their end links, from the payload's header
        alone (no column is decoded)."""
        data = self._payload(header)
        try:
            with _header_reader.stream_reader(data) as stream:
                size = int.from_bytes(_read(stream, 4), "little")
                runs = json.loads(_read(stream, size))["runs"]
            return [Run(int(start), int(end), bytes.fromhex(before), bytes.fromhex(last))
                    for start, end, before, last in runs]
        except (zstandard.ZstdError, ValueError, KeyError, TypeError) as exc:
            raise StorageError(f"partition {self.name}: block of seqs {header.min_seq}-{header.max_seq}: "
                               f"not a readable block: {exc}") from None

    def _payload(self, header: BlockHeader) -> bytes:
        data = payload(self.conn, header.id)
        if data is None:    # cannot happen inside the snapshot that listed it
            raise StorageError(f"partition {self.name}: block {header.id} vanished inside a read transaction")
        return data

    def close(self) -> None:
        try:
            if self.conn.in_transaction:
                self.conn.execute("COMMIT")
        finally:
            if self.own:
                self.conn.close()


def _read(stream: Any, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            raise ValueError("a payload shorter than its header says")
        data += chunk
    return data
