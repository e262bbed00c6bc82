"""The SQLite schema, created through sqlite-utils on first open.

Choices, with the ceilings measured on the 2-core reference machine (WAL, synchronous=FULL,
5,000 rows per transaction): a unique key that grows in order per source appends to the B-tree
(195k rows/s) where a random 16-byte id scatters writes (91k rows/s). So dedup is enforced by
UNIQUE(origin, pos) — `origin` a small integer for (host, source_key), `pos` the byte offset or
journal seqnum, increasing per source — and the 128-bit event id is stored but not indexed.
Optional columns are NULL rather than "" so partial indexes skip them. Host filters resolve
through the small `origins` table to `origin IN (...)`, which the (origin, pos) index serves, so
events need no host index.

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
        CREATE INDEX IF NOT EXISTS events_request_id ON events(request_id) WHERE request_id IS NOT NULL;
        CREATE INDEX IF NOT EXISTS events_user ON events(user) WHERE user IS NOT NULL;
        -- Level filters: warning and worse are a small share of most logs, so a partial index of
        -- them costs info/debug traffic nothing and lets `--min-level error` walk only severe
        -- events in time order (the query adds the literal `level <= 4` that selects it).
        CREATE INDEX IF NOT EXISTS events_severe ON events(time) WHERE level <= 4;
        -- Addresses each node was seen from, so `--host IP` resolves to origins without an index
        -- on every event's host_ip.
        CREATE TABLE IF NOT EXISTS node_addresses (host TEXT NOT NULL, ip TEXT NOT NULL, PRIMARY KEY (host, ip));
        -- External-content FTS5: the text lives once, in events.message. No triggers: the single
        -- writer inserts index rows in the same transaction as the events. columnsize=0: no
        -- ranking is needed, so the per-row size table is not kept.
        CREATE VIRTUAL TABLE IF NOT EXISTS events_fts USING fts5(
            message, content='events', content_rowid='seq', tokenize='unicode61', columnsize=0);
        -- Links of purged events that verification needs (the chain's signed anchors).
        CREATE TABLE IF NOT EXISTS chain_anchors (seq INTEGER PRIMARY KEY, link BLOB NOT NULL);
        -- Signed checkpoints (common/checkpoints.py); two keys may sign the same seq at a rotation.
        CREATE TABLE IF NOT EXISTS checkpoints (seq INTEGER NOT NULL, key_id TEXT NOT NULL,
            collector TEXT NOT NULL, chain_hash TEXT NOT NULL, time INTEGER NOT NULL,
            signature TEXT NOT NULL, PRIMARY KEY (seq, key_id));
        -- Every public key that ever signed here, so old checkpoints stay verifiable after a
        -- rotation (the rotation event in the chain is what makes an old key trusted).
        CREATE TABLE IF NOT EXISTS signing_keys (key_id TEXT PRIMARY KEY, public_key TEXT NOT NULL,
            first_seq INTEGER NOT NULL, added_at INTEGER NOT NULL);
        """
    )
    db["meta"].insert({"key": "schema_version", "value": str(SCHEMA_VERSION)}, replace=True)
