"""The SQLite schema (docs/storage-model.md §5): the main file and the partition files.

Choices, with the ceilings measured on the 2-core reference machine (WAL, synchronous=FULL,
5,000 rows per transaction): a key that grows in order per source appends to the B-tree (195k
rows/s) where a random 16-byte id scatters writes (91k rows/s). So dedup looks events up by
(origin, pos) — `origin` a small integer for (host, source_key), `pos` the byte offset or journal
seqnum, increasing per source — and the 128-bit event id is stored but not indexed. Optional
columns are NULL rather than "" so partial indexes skip them. Host filters resolve through the
small `origins` table of the main file to `origin IN (...)`, which the (origin, pos) index of each
partition serves, so events need no host index.

Times are integers of microseconds since the epoch (UTC): compact, and range scans on the time
index are integer comparisons. `seq` is the rowid: gapless per chain, assigned by the single writer.
Every index lives in the partition of its events, so the hot partition's indexes hold one period.
"""

from __future__ import annotations

import sqlite3

SCHEMA_VERSION = 2

EVENTS_TABLE = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY, origin INTEGER NOT NULL, pos INTEGER NOT NULL, id TEXT NOT NULL,
    time INTEGER NOT NULL, received_at INTEGER NOT NULL, host TEXT NOT NULL, host_ip TEXT,
    collector TEXT, namespace TEXT, source TEXT, log_type TEXT, app TEXT, pid INTEGER,
    level INTEGER NOT NULL, request_id TEXT, user TEXT, action TEXT, message TEXT NOT NULL,
    fields TEXT, tier TEXT NOT NULL, truncated INTEGER, hash BLOB)
"""

PARTITION_SCHEMA = EVENTS_TABLE + """;
-- Not unique: uniqueness spans partitions and the single writer enforces it (storage-model §4).
CREATE INDEX IF NOT EXISTS events_origin_pos ON events(origin, pos);
CREATE INDEX IF NOT EXISTS events_time ON events(time);
CREATE INDEX IF NOT EXISTS events_request_id ON events(request_id) WHERE request_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_user ON events(user) WHERE user IS NOT NULL;
-- Level filters: warning and worse are a small share of most logs, so a partial index of them
-- costs info/debug traffic nothing and lets `--min-level error` walk only severe events in time
-- order (the query adds the literal `level <= 4` that selects it).
CREATE INDEX IF NOT EXISTS events_severe ON events(time) WHERE level <= 4;
-- External-content FTS5: the text lives once, in events.message. No triggers: the single writer
-- inserts index rows in the same transaction as the events. columnsize=0: no ranking is needed.
CREATE VIRTUAL TABLE IF NOT EXISTS events_fts USING fts5(
    message, content='events', content_rowid='seq', tokenize='unicode61', columnsize=0);
"""

MAIN_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS origins (id INTEGER PRIMARY KEY, host TEXT NOT NULL, source_key TEXT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS idx_origins_host_source_key ON origins(host, source_key);
-- Addresses each node was seen from, so `--host IP` resolves to origins without an index on every
-- event's host_ip.
CREATE TABLE IF NOT EXISTS node_addresses (host TEXT NOT NULL, ip TEXT NOT NULL, PRIMARY KEY (host, ip));
-- The catalogue of live partitions: committed state, the only list readers trust (crash rule).
CREATE TABLE IF NOT EXISTS partitions (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, tier TEXT NOT NULL,
    period_start INTEGER NOT NULL, period_end INTEGER NOT NULL, min_seq INTEGER NOT NULL,
    max_seq INTEGER NOT NULL, min_time INTEGER NOT NULL, max_time INTEGER NOT NULL, count INTEGER NOT NULL);
-- The dedup span catalogue: per partition and origin, the positions it holds (storage-model §4).
CREATE TABLE IF NOT EXISTS partition_origins (part INTEGER NOT NULL, origin INTEGER NOT NULL,
    min_pos INTEGER NOT NULL, max_pos INTEGER NOT NULL, PRIMARY KEY (part, origin)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS partition_namespaces (part INTEGER NOT NULL, namespace TEXT NOT NULL,
    count INTEGER NOT NULL, PRIMARY KEY (part, namespace)) WITHOUT ROWID;
-- Links of removed events that verification needs (the chain's signed anchors).
CREATE TABLE IF NOT EXISTS chain_anchors (seq INTEGER PRIMARY KEY, link BLOB NOT NULL);
-- A row purge in progress, per tier: what it removed so far (`state`, made a purge event at the
-- next start when the collector died before recording it), and the seq ranges of its last step
-- (`deleting`), which commits here before the rows go: the next open finishes that step.
CREATE TABLE IF NOT EXISTS purge_pending (tier TEXT PRIMARY KEY, state TEXT NOT NULL, deleting TEXT);
-- Signed checkpoints (common/checkpoints.py); two keys may sign the same seq at a rotation.
CREATE TABLE IF NOT EXISTS checkpoints (seq INTEGER NOT NULL, key_id TEXT NOT NULL,
    collector TEXT NOT NULL, chain_hash TEXT NOT NULL, time INTEGER NOT NULL,
    signature TEXT NOT NULL, PRIMARY KEY (seq, key_id));
-- Every public key that ever signed here, so old checkpoints stay verifiable after a rotation
-- (the rotation event in the chain is what makes an old key trusted).
CREATE TABLE IF NOT EXISTS signing_keys (key_id TEXT PRIMARY KEY, public_key TEXT NOT NULL,
    first_seq INTEGER NOT NULL, added_at INTEGER NOT NULL);
"""

# The main-file tables a single-file (schema 1) store already has, copied by the migration.
CARRIED_TABLES = ("meta", "origins", "node_addresses", "chain_anchors", "checkpoints", "signing_keys")


def create_main_schema(conn: sqlite3.Connection) -> None:
    conn.executescript(MAIN_SCHEMA)
    conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))


def create_partition_schema(conn: sqlite3.Connection) -> None:
    conn.executescript(PARTITION_SCHEMA)
