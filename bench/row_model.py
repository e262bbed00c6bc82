"""The store as it was before issue 30, kept inside the bench so every run can show the before
and the after on the same events (section `storage`).

The row model: every event one row of `events`, four B-tree indexes (the dedup key (origin, pos),
time, request id, user; a fifth, partial one over the severe levels) and an external-content
FTS5 row for its message: collector/store/schema.py's ROW_MODEL_SCHEMA, the partition schema of
schema version 2, kept there unchanged for the conversion of old stores.

`RowModelStore.store_batch` does what the writer did per transaction, in the same order: the
dedup probe of each source's position range on (origin, pos), the rows with their 128-bit ids,
the hash chain over them, then the inserts and one commit, the head recorded in `meta` as the
main file did. The inserts are executemany: the writer's C batch insert (which let the GIL go, for
writer shards) went with the row model; on one connection it saved 2-4 µs an event, so the
"before" here costs a little more than the writer did. One file stands for the main file and the one hot partition the bench's events
fall in; the catalogue rows the main file also kept are a few per transaction and left out.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from fleetlog.collector.store import ROW_COLUMNS, IncomingEvents
from fleetlog.collector.store.schema import ROW_MODEL_SCHEMA
from fleetlog.common import chain
from fleetlog.common.ids import event_ids_of

# The partition schema of the row model, frozen in schema.py (the converter reads files of it).
ROW_SCHEMA = ROW_MODEL_SCHEMA + "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);"

_INSERT = f"INSERT INTO events({', '.join(ROW_COLUMNS)}) VALUES ({','.join('?' * len(ROW_COLUMNS))})"
_INSERT_FTS = "INSERT INTO events_fts(rowid, message) VALUES (?, ?)"
_CHAIN_COLUMNS = tuple(ROW_COLUMNS.index(key) for key in chain.CANONICAL_KEYS)
_HASH = ROW_COLUMNS.index("hash")
_MESSAGE = ROW_COLUMNS.index("message")


def insert_path() -> str:
    """How this build's row model inserts, for the bench's row."""
    return "executemany"


class RowModelStore:
    """One file of the row model, written as the writer wrote it (see the module's docstring)."""

    def __init__(self, path: str, synchronous: str = "full", collector: str = "bench-collector"):
        self.collector = collector
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
        self.conn.execute("PRAGMA cache_size=-65536")        # the writer's 64 MiB
        self.conn.executescript(ROW_SCHEMA)
        self.last_seq = 0
        self.head = chain.GENESIS
        self.origins: dict[tuple[str, str], int] = {}

    def store_batch(self, batches: Sequence[IncomingEvents], received_at_us: int) -> int:
        """Store the events of `batches` in one transaction; returns how many were new."""
        rows: list[list[Any]] = []
        for incoming in batches:
            rows.extend(self._rows(incoming, received_at_us, self.last_seq + len(rows)))
        if not rows:
            return 0
        self.head = chain.link_rows(self.head, rows, _CHAIN_COLUMNS, _HASH)
        self._run("BEGIN IMMEDIATE")
        self.conn.executemany(_INSERT, rows)
        self.conn.executemany(_INSERT_FTS, ((row[0], row[_MESSAGE]) for row in rows))
        self.last_seq += len(rows)
        self._run(f"INSERT OR REPLACE INTO meta(key, value) VALUES ('last_seq', '{self.last_seq}'), "
                  f"('chain_head', '{self.head.hex()}')")
        self._run("COMMIT")
        return len(rows)

    def _run(self, sql: str) -> None:
        self.conn.execute(sql)

    def _rows(self, incoming: IncomingEvents, received_at: int, seq: int) -> list[list[Any]]:
        key = (incoming.host, incoming.source_key)
        origin = self.origins.setdefault(key, len(self.origins) + 1)
        positions = incoming.position
        seen = {pos for (pos,) in self.conn.execute(
            "SELECT pos FROM events WHERE origin = ? AND pos BETWEEN ? AND ?", (origin, min(positions), max(positions)))}
        event_id = event_ids_of(*key)
        rows = []
        for i, pos in enumerate(positions):
            if pos in seen:
                continue
            seq += 1
            rows.append([seq, origin, pos, event_id(pos), incoming.time_us[i], received_at, incoming.host,
                         incoming.host_ip or None, self.collector, incoming.namespace, incoming.source,
                         incoming.log_type, incoming.app[i] or None, incoming.pid[i] or None, incoming.level[i],
                         incoming.request_id[i] or None, incoming.user[i] or None, incoming.action[i] or None,
                         incoming.message[i], incoming.fields_json[i] or None, incoming.tier[i],
                         incoming.flags[i] & 1, None])
        return rows

    def close(self) -> None:
        """Checkpoint the WAL into the file, as the writer's close did."""
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.conn.close()
