"""The SQLite schema, created through sqlite-utils on first open.

Choices, with the ceilings measured on the 2-core reference machine (WAL, synchronous=FULL,
5,000 rows per transaction): a unique key that grows in order per source appends to the B-tree
(195k rows/s) where a random 16-byte id scatters writes (91k rows/s). So dedup is enforced by
UNIQUE(origin, pos) — `origin` a small integer for (host, source_key), `pos` the byte offset or
journal seqnum, increasing per source — and the 128-bit event id is stored but not indexed.
Optional columns are NULL rather than "" so partial indexes skip them.

Times are integers of microseconds since the epoch (UTC): compact, and range scans on the time
index are integer comparisons. `seq` is the rowid: gapless, assigned by the single writer.
"""

from __future__ import annotations

import sqlite_utils

SCHEMA_VERSION = 1


def create_schema(db: sqlite_utils.Database) -> None:
    db["meta"].create({"key": str, "value": str}, pk="key", if_not_exists=True)
    db["origins"].create(
        {"id": int, "host": str, "source_key": str}, pk="id", not_null={"host", "source_key"},
        if_not_exists=True,
    )
    db["origins"].create_index(["host", "source_key"], unique=True, if_not_exists=True)
    db["events"].create(
        {
            "seq": int, "origin": int, "pos": int, "id": str, "time": int, "received_at": int,
            "host": str, "host_ip": str, "collector": str, "namespace": str, "source": str,
            "log_type": str, "app": str, "pid": int, "level": int, "request_id": str, "user": str,
            "action": str, "message": str, "fields": str, "tier": str, "truncated": int,
            "hash": bytes,
        },
        pk="seq",
        not_null={"origin", "pos", "id", "time", "received_at", "host", "level", "message", "tier"},
        if_not_exists=True,
    )
    db.executescript(
        """
        CREATE UNIQUE INDEX IF NOT EXISTS events_origin_pos ON events(origin, pos);
        CREATE INDEX IF NOT EXISTS events_time ON events(time);
        CREATE INDEX IF NOT EXISTS events_host_time ON events(host, time);
        CREATE INDEX IF NOT EXISTS events_request_id ON events(request_id) WHERE request_id IS NOT NULL;
        CREATE INDEX IF NOT EXISTS events_user ON events(user) WHERE user IS NOT NULL;
        CREATE INDEX IF NOT EXISTS events_tier_time ON events(tier, namespace, time);
        """
    )
    if not db["events_fts"].exists():
        # External-content FTS5: the text lives once, in events.message. No triggers: the single
        # writer inserts index rows in the same transaction as the events, in one executemany.
        db["events"].enable_fts(["message"], fts_version="FTS5", create_triggers=False,
                                tokenize="unicode61")
    db["meta"].insert({"key": "schema_version", "value": str(SCHEMA_VERSION)}, replace=True)
