"""The PostgreSQL schema: versioned migrations, applied at start one collector at a time, and the
time partitions of the events table.

Model (docs/storage-model.md): every collector appends to its own chain (`chain` = its
node_name) with a gapless `seq`, so collectors never share a sequence; an event is (chain, seq).
Events are partitioned by tier (LIST) and, for the tiers that expire, by day of the event's
`time` (RANGE over µs since the epoch): retention drops a whole expired day in milliseconds. The
permanent tier is never purged and is one plain partition.

PostgreSQL enforces a unique key on a partitioned table only when the key holds the partition
key, and the dedup key (origin, pos) does not hold the time. So exactly-once lives in the key
ledger `event_keys` beside the partitions: its primary key (origin, pos) is claimed in the same
transaction that stores the event, and a second collector inserting the same key waits for the
first's commit and then sees the conflict (stored once), or inherits the key if the first rolled
back. Retention removes the keys of a dropped partition with it.

Migrations are (version, SQL) steps; `fleetlog_schema` records what was applied. A collector
takes an advisory lock while it migrates, so collectors started together apply each step once,
and refuses a database whose schema is newer than it knows.
"""

from __future__ import annotations

import datetime
import re

import psycopg

from fleetlog.collector.store.pg_dsn import scalar
from fleetlog.common.errors import StorageError

# Advisory locks of fleetlog: pg_advisory_lock(LOCK_SPACE, n). Forwarder leases use
# (LEASE_SPACE, hashtext(name)).
LOCK_SPACE = 0x464C4F47          # "FLOG"
LEASE_SPACE = 0x464C4657         # "FLFW"
LOCK_MIGRATIONS = 1
LOCK_PARTITIONS = 2
LOCK_PURGE = 3

DAY_US = 86_400 * 1_000_000
EXPIRING_TIERS = ("general", "security")
PARTITIONS_AHEAD_DAYS = 3        # created ahead of time, so ingest at midnight never waits on DDL

_EVENT_COLUMNS_DDL = """
    chain text NOT NULL, seq bigint NOT NULL, origin bigint NOT NULL, pos bigint NOT NULL,
    id text NOT NULL, time bigint NOT NULL, received_at bigint NOT NULL, host text NOT NULL,
    host_ip text, collector text, namespace text NOT NULL, source text, log_type text, app text,
    pid bigint, level smallint NOT NULL, request_id text, "user" text, action text,
    message text NOT NULL, fields text, tier text NOT NULL, truncated smallint NOT NULL,
    hash bytea NOT NULL
"""

MIGRATIONS: list[tuple[int, str]] = [
    (1, f"""
    CREATE TABLE chains (
        chain text PRIMARY KEY,                  -- the collector's node_name
        last_seq bigint NOT NULL DEFAULT 0,
        head bytea NOT NULL,                     -- link of last_seq (32 zero bytes when empty)
        last_checkpoint_seq bigint NOT NULL DEFAULT 0,
        created_at bigint NOT NULL);
    CREATE TABLE origins (
        id bigserial PRIMARY KEY, host text NOT NULL, source_key text NOT NULL,
        UNIQUE (host, source_key));
    CREATE TABLE node_addresses (host text NOT NULL, ip text NOT NULL, PRIMARY KEY (host, ip));
    -- The exactly-once ledger (see the module docstring).
    CREATE TABLE event_keys (origin bigint NOT NULL, pos bigint NOT NULL, PRIMARY KEY (origin, pos));
    CREATE TABLE events ({_EVENT_COLUMNS_DDL}) PARTITION BY LIST (tier);
    CREATE TABLE events_general PARTITION OF events FOR VALUES IN ('general') PARTITION BY RANGE (time);
    CREATE TABLE events_security PARTITION OF events FOR VALUES IN ('security') PARTITION BY RANGE (time);
    CREATE TABLE events_permanent PARTITION OF events FOR VALUES IN ('permanent');
    CREATE INDEX events_chain_seq ON events (chain, seq);
    CREATE INDEX events_time ON events (time);
    CREATE INDEX events_origin ON events (origin);
    CREATE INDEX events_request_id ON events (request_id) WHERE request_id IS NOT NULL;
    CREATE INDEX events_user ON events ("user") WHERE "user" IS NOT NULL;
    -- Links of purged events that verification needs, per chain.
    CREATE TABLE chain_anchors (chain text NOT NULL, seq bigint NOT NULL, link bytea NOT NULL,
        PRIMARY KEY (chain, seq));
    CREATE TABLE checkpoints (chain text NOT NULL, seq bigint NOT NULL, key_id text NOT NULL,
        collector text NOT NULL, chain_hash text NOT NULL, time bigint NOT NULL, signature text NOT NULL,
        PRIMARY KEY (chain, seq, key_id));
    CREATE TABLE signing_keys (chain text NOT NULL, key_id text NOT NULL, public_key text NOT NULL,
        first_seq bigint NOT NULL, added_at bigint NOT NULL, PRIMARY KEY (chain, key_id));
    -- The cluster: collectors' heartbeats and the nodes connected to each.
    CREATE TABLE collectors (name text PRIMARY KEY, version text NOT NULL, address text NOT NULL,
        started_at bigint NOT NULL, heartbeat_at bigint NOT NULL);
    CREATE TABLE nodes (name text PRIMARY KEY, collector text NOT NULL, ip text NOT NULL DEFAULT '',
        connected boolean NOT NULL, last_seen bigint NOT NULL);
    -- Forwarders: a cursor per chain (what was delivered), shared by the cluster.
    CREATE TABLE forwarder_cursors (forwarder text NOT NULL, chain text NOT NULL, seq bigint NOT NULL,
        updated_at bigint NOT NULL, PRIMARY KEY (forwarder, chain));
    """),
    (2, """
    -- A row purge in progress, per chain and tier (retention's journal): what it deleted so far,
    -- so a purge a crash interrupts is still recorded as a purge event at the next start.
    CREATE TABLE purge_journal (chain text NOT NULL, tier text NOT NULL, state text NOT NULL,
        PRIMARY KEY (chain, tier));
    """),
    (3, """
    -- Settings managed live (collector/settings/), shared by the cluster: one row per entry with
    -- its JSON body and who changed it last; every collector polls `settings_version`.
    CREATE TABLE settings (kind text NOT NULL, name text NOT NULL, body text NOT NULL,
        created_at bigint NOT NULL, changed_at bigint NOT NULL, changed_by text NOT NULL,
        changed_via text NOT NULL, PRIMARY KEY (kind, name));
    CREATE TABLE settings_version (id integer PRIMARY KEY CHECK (id = 1), version bigint NOT NULL);
    INSERT INTO settings_version(id, version) VALUES (1, 0);
    CREATE TABLE token_uses (name text PRIMARY KEY, last_used bigint NOT NULL);
    """),
]

LATEST_VERSION = MIGRATIONS[-1][0]


class SchemaTooNew(StorageError):
    """The database was migrated by a newer fleetlog: waiting will not help, upgrading will."""


def migrate(conn: psycopg.Connection, applied_by: str) -> int:
    """Bring the schema to LATEST_VERSION (an autocommit connection); returns the version found
    before. Refuses a newer schema. One collector at a time: the others wait on the lock and then
    find nothing left to do."""
    try:
        conn.execute("SELECT pg_advisory_lock(%s, %s)", (LOCK_SPACE, LOCK_MIGRATIONS))
        try:
            conn.execute("CREATE TABLE IF NOT EXISTS fleetlog_schema (version integer PRIMARY KEY,"
                         " applied_at timestamptz NOT NULL DEFAULT now(), applied_by text NOT NULL)")
            found = int(scalar(conn, "SELECT coalesce(max(version), 0) FROM fleetlog_schema"))
            if found > LATEST_VERSION:
                raise SchemaTooNew(
                    f"the database schema is version {found}, made by a newer fleetlog; this collector "
                    f"knows versions up to {LATEST_VERSION}: upgrade it (refusing to touch a newer schema)")
            for version, sql in MIGRATIONS:
                if version <= found:
                    continue
                with conn.transaction():
                    conn.execute(sql)
                    conn.execute("INSERT INTO fleetlog_schema(version, applied_by) VALUES (%s, %s)",
                                 (version, applied_by))
            return found
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s, %s)", (LOCK_SPACE, LOCK_MIGRATIONS))
    except psycopg.Error as exc:
        raise StorageError(f"applying the schema migrations failed: {exc}") from None


def day_start(time_us: int) -> int:
    return time_us - time_us % DAY_US


def partition_name(tier: str, start_us: int) -> str:
    day = datetime.datetime.fromtimestamp(start_us / 1e6, datetime.UTC)
    return f"events_{tier}_{day:%Y%m%d}"


_PARTITION_NAME = re.compile(r"^events_(general|security)_(\d{8})$")


def parse_partition_name(name: str) -> tuple[str, int] | None:
    """(tier, first µs of its day) of a day partition's name, else None."""
    match = _PARTITION_NAME.match(name)
    if not match:
        return None
    day = datetime.datetime.strptime(match.group(2), "%Y%m%d").replace(tzinfo=datetime.UTC)
    return match.group(1), int(day.timestamp()) * 1_000_000


def existing_partitions(conn: psycopg.Connection) -> set[tuple[str, int]]:
    """(tier, day start) of every day partition there is."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname IN ('events_general', 'events_security')")
    return {parsed for (name,) in rows if (parsed := parse_partition_name(name))}


def create_partitions(conn: psycopg.Connection, wanted: set[tuple[str, int]]) -> set[tuple[str, int]]:
    """Create the day partitions in `wanted` that are missing (an autocommit connection), under an
    advisory lock so two collectors never race on the same DDL. Returns every partition there is."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_SPACE, LOCK_PARTITIONS))
        have = existing_partitions(conn)
        for tier, start in sorted(wanted - have):
            conn.execute(f"CREATE TABLE {partition_name(tier, start)} PARTITION OF events_{tier}"
                         f" FOR VALUES FROM ({start}) TO ({start + DAY_US})")
            have.add((tier, start))
    return have


def days_ahead(now_us: int, days: int = PARTITIONS_AHEAD_DAYS) -> set[tuple[str, int]]:
    """Today's and the next `days` days' partitions of every expiring tier."""
    today = day_start(now_us)
    return {(tier, today + i * DAY_US) for tier in EXPIRING_TIERS for i in range(days + 1)}
