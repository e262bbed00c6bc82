"""The SQLite schema (docs/storage-model.md §5, §6): the main file and the partition files.

The main file is the commit record: meta, origins, the catalogue of partitions with its dedup
spans and namespace counts, chain anchors, purge journal, checkpoints and keys. A partition file
holds compressed column blocks (sqlite_blocks.py): schema 3. Before that (schema 2, and the
single file of schema 1) a partition held one row per event in `events` with four indexes and an
FTS5 index; such a file is converted to blocks when the writer opens the store
(sqlite_convert.py), and ROW_MODEL_SCHEMA below is kept to say what it read, and for tests that
build an old store.

Choices: `origin` is a small integer for (host, source_key) and `pos` the byte offset or journal
seqnum, increasing per source: dedup looks events up by (origin, pos) through the main file's span
catalogue, then the partition's block_origins. Times are integers of microseconds since the epoch
(UTC). `seq` is gapless per chain, assigned by the single writer.
"""

from __future__ import annotations

import sqlite3

from fleetlog.collector.store.sqlite_blocks import create_blocks_schema

SCHEMA_VERSION = 3

EVENTS_TABLE = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY, origin INTEGER NOT NULL, pos INTEGER NOT NULL, id TEXT NOT NULL,
    time INTEGER NOT NULL, received_at INTEGER NOT NULL, host TEXT NOT NULL, host_ip TEXT,
    collector TEXT, namespace TEXT, source TEXT, log_type TEXT, app TEXT, pid INTEGER,
    level INTEGER NOT NULL, request_id TEXT, user TEXT, action TEXT, message TEXT NOT NULL,
    fields TEXT, tier TEXT NOT NULL, truncated INTEGER, hash BLOB)
"""

# A partition file of schema 2 (one row per event), as conversion finds it.
ROW_MODEL_SCHEMA = EVENTS_TABLE + """;
CREATE INDEX IF NOT EXISTS events_origin_pos ON events(origin, pos);
CREATE INDEX IF NOT EXISTS events_time ON events(time);
CREATE INDEX IF NOT EXISTS events_request_id ON events(request_id) WHERE request_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_user ON events(user) WHERE user IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_severe ON events(time) WHERE level <= 4;
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
-- Settings managed live (collector/settings/): one row per entry (kind, name) with its JSON body
-- and who changed it last; `settings_version` counts changes, so collectors poll one integer.
CREATE TABLE IF NOT EXISTS settings (kind TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL,
    created_at INTEGER NOT NULL, changed_at INTEGER NOT NULL, changed_by TEXT NOT NULL,
    changed_via TEXT NOT NULL, PRIMARY KEY (kind, name));
CREATE TABLE IF NOT EXISTS settings_version (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL);
INSERT OR IGNORE INTO settings_version(id, version) VALUES (1, 0);
INSERT OR IGNORE INTO meta(key, value) VALUES ('settings_schema', '1');
-- When each token was last used (by name), kept apart so a use never bumps the version.
CREATE TABLE IF NOT EXISTS token_uses (name TEXT PRIMARY KEY, last_used INTEGER NOT NULL);
"""

# The main-file tables a single-file (schema 1) store already has, copied by the migration.
CARRIED_TABLES = ("meta", "origins", "node_addresses", "chain_anchors", "checkpoints", "signing_keys")


def create_main_schema(conn: sqlite3.Connection) -> None:
    conn.executescript(MAIN_SCHEMA)
    conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))


def create_partition_schema(conn: sqlite3.Connection) -> None:
    create_blocks_schema(conn)
