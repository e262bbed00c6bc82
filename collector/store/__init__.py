"""Event storage behind one narrow interface (contract §7, docs/storage-model.md).

The rest of the collector — query, retention, forwarding, signing, the console — talks to storage
only through the types of this module; nothing outside `collector/store/` imports a database
driver. A backend is one module (`sqlite.py` today, `postgres*.py` next) that provides:

- `Backend`      opened once per collector (`open_backend`): hands out the one `EventWriter`,
                 an `EventReader` per reading thread, forwarder cursors and leases;
- `EventWriter`  the write side, used from ONE thread (collector/writer.py): store a batch,
                 delete events for retention, record checkpoints and signing keys;
- `EventReader`  the read side, one per thread: search, read-after-cursor (follow, forwarders),
                 expired events (retention), status;
- `CursorStore`  a forwarder's durable cursor; `Lease` the right to run a forwarder (trivially
                 held for SQLite, an advisory lock in PostgreSQL).

Model (docs/storage-model.md): a **chain** is what one writer appends (gapless `seq`, hash links,
signed checkpoints); events are identified by (chain, seq). A **cursor** maps chain -> last seq
seen; with one chain it degenerates to one seq, which is today's follow/forward wire format.

Events enter as `IncomingEvents` (one per ingest chunk: what repeats is stored once, the
per-event values column-wise) and come back out as row tuples in `EVENT_COLUMNS` order
(`row_to_event` makes them contract §3 dicts).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from fleetlog.common.errors import UsageError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from fleetlog.collector.filters import FilterSpec
    from fleetlog.collector.store.settings_rows import SettingsStore

# The stored columns, in the order of every row tuple a reader returns; contract §3 names.
EVENT_COLUMNS: tuple[str, ...] = (
    "seq", "id", "time", "received_at", "host", "host_ip", "collector", "namespace", "source",
    "log_type", "app", "pid", "level", "request_id", "user", "action", "message", "fields",
    "tier", "truncated",
)

# A writer's row, as every backend builds it before the chain fills in `hash` (the last) for a
# whole batch: the stored columns plus the dedup key (origin, pos) and the link.
ROW_COLUMNS: tuple[str, ...] = (
    "seq", "origin", "pos", "id", "time", "received_at", "host", "host_ip", "collector", "namespace",
    "source", "log_type", "app", "pid", "level", "request_id", "user", "action", "message", "fields",
    "tier", "truncated", "hash",
)


def merge_ranges(seqs: list[int]) -> list[tuple[int, int]]:
    """Sorted seqs as inclusive ranges."""
    ranges: list[tuple[int, int]] = []
    for seq in seqs:
        if ranges and ranges[-1][1] == seq - 1:
            ranges[-1] = (ranges[-1][0], seq)
        else:
            ranges.append((seq, seq))
    return ranges

# An event as a reader returns it: its values in EVENT_COLUMNS order.
Row = tuple[Any, ...]

# A signed checkpoint as stored: (seq, key_id, collector, chain_hash hex, time µs, signature).
CheckpointRow = tuple[int, str, str, str, int, str]

# A cursor: chain id -> the last seq a consumer has dealt with (absent chain = nothing seen).
Cursor = dict[str, int]


@dataclass
class IncomingEvents:
    """Events of one source of one node, after identity and classification, column-wise.

    `tier` and `keep` are per event: `keep[i]` False means below the namespace threshold
    (dropped, counted, never stored). `fields_json` holds JSON objects or "" for none.
    """

    host: str
    host_ip: str
    source_key: str
    source: str
    namespace: str
    log_type: str
    position: Sequence[int]
    time_us: Sequence[int]
    level: bytes
    message: Sequence[str]
    request_id: Sequence[str]
    user: Sequence[str]
    action: Sequence[str]
    app: Sequence[str]
    pid: Sequence[int]
    fields_json: Sequence[str]
    flags: bytes
    tier: Sequence[str]
    # The derived event ids (store.blocks.event_ids), when the intake made them: the SQLite
    # writer, whose thread bounds the ingest rate, then need not. None: the writer makes them.
    ids: Sequence[str] | None = None

    def __len__(self) -> int:
        return len(self.position)


@dataclass
class StoreResult:
    stored: int = 0
    duplicates: int = 0
    first_seq: int = 0     # 0 when nothing was stored
    last_seq: int = 0
    duplicates_by_host: dict[str, int] = field(default_factory=dict)
    stored_by_host: dict[str, int] = field(default_factory=dict)


@dataclass
class DeleteResult:
    """What one retention step removed from one chain: what its purge event records."""

    count: int = 0
    oldest_us: int | None = None
    newest_us: int | None = None
    ranges: list[tuple[int, int]] = field(default_factory=list)     # inclusive seq ranges
    anchors_sha256: str = ""
    anchors: list[tuple[int, bytes]] = field(default_factory=list)  # (seq, link) kept as anchors
    namespaces: dict[str, int] = field(default_factory=dict)        # deleted events per namespace
    # A partition shared by several chains (a PostgreSQL cluster: one chain per collector) is
    # dropped by one collector for all of them: what it removed of the other chains, by chain id.
    # Their purge records stand in the dropping collector's chain and name the chain they cover.
    other_chains: dict[str, DeleteResult] = field(default_factory=dict)

    def record(self, deleted: Sequence[tuple[int, int, str, bytes]]) -> list[tuple[int, bytes]]:
        """Fill in what removing these events — (seq, time, namespace, link), seq order — means
        for the purge record, and return the anchors to keep: the link of each removed event
        whose successor stays, so the chain stays verifiable across the gap."""
        seqs = {row[0] for row in deleted}
        anchors = [(seq, bytes(link)) for seq, _, _, link in deleted if seq + 1 not in seqs]
        self.count = len(deleted)
        self.oldest_us = min(row[1] for row in deleted)
        self.newest_us = max(row[1] for row in deleted)
        self.ranges = merge_ranges(sorted(seqs))
        self.anchors = anchors
        self.anchors_sha256 = anchors_digest(anchors)
        for _, _, namespace, _ in deleted:
            self.namespaces[namespace] = self.namespaces.get(namespace, 0) + 1
        return anchors


@dataclass
class StoreStatus:
    """What `fleetlog status` shows of the store."""

    event_count: int
    heads: Cursor                # chain -> last committed seq
    storage_bytes: int = 0

    @property
    def last_seq(self) -> int:
        """The single-chain view of today's wire format (the highest head)."""
        return max(self.heads.values(), default=0)


def anchors_digest(anchors: Sequence[tuple[int, bytes]]) -> str:
    """SHA-256 over (seq as 8 bytes big-endian || link) of each anchor, in seq order: recorded in
    the (chained) purge event so a verifier can tell anchors the collector wrote from forged ones."""
    h = hashlib.sha256()
    for seq, link in sorted(anchors):
        h.update(seq.to_bytes(8, "big") + link)
    return h.hexdigest()


def row_to_event(row: Sequence[Any]) -> dict[str, Any]:
    """A stored row (EVENT_COLUMNS order) as the stored-value dict the chain hashes."""
    return dict(zip(EVENT_COLUMNS, row))


# The signer's hook, called by the writer inside the storing transaction:
# (the first new seq of one chain, the links of it and the consecutive seqs after it, the last
# checkpoint seq) -> checkpoints to store in the same transaction (so they commit with their events).
Checkpointer = Callable[[int, Sequence[bytes], int], list[CheckpointRow]]


class EventWriter(Protocol):
    """The write side. Used from one thread only (collector/writer.py runs every write job on its
    own thread, so ingest, purge steps, notes and checkpoints never race for the write lock).

    Single-chain state, as of the last commit: `chain` (its id), `last_seq`, `chain_head` (link of
    `last_seq`, chain.GENESIS when empty), `last_checkpoint_seq`. `created` is True when this
    open created the store (the collector records a permanent "database created" event)."""

    chain: str
    created: bool
    last_seq: int
    chain_head: bytes
    last_checkpoint_seq: int
    checkpointer: Checkpointer | None

    def store_batch(self, batches: Sequence[IncomingEvents], received_at_us: int) -> list[StoreResult]:
        """Store every new event in one transaction; events already stored (same host, source_key,
        position; across every partition and tier) are counted as duplicates. Returns one result
        per input, after commit; raises StorageError and stores nothing when it fails."""

    def delete_events(self, seqs: Sequence[int],
                      journal: Callable[[DeleteResult], tuple[str, str]] | None = None) -> DeleteResult:
        """Delete these events of this chain in one short step, keeping the chain verifiable (an
        anchor for the link of every deleted seq whose successor stays). `journal(result)` ->
        (tier, state): stored with the anchors, so a purge a crash interrupts is still recorded
        (`pending_purges`). Used for what expires inside partitions that stay."""

    def add_anchors(self, anchors: Sequence[tuple[int, bytes]]) -> None:
        """Store chain anchors ahead of a drop (harmless on their own)."""

    def drop_partitions(self, tier: str, expected: dict[str, int],
                        record: Callable[[list[Any]], list[IncomingEvents]]) -> list[Any]:
        """In one transaction: unlist the partitions named in `expected` (name -> max_seq when
        scanned; one that grew since is kept), store `record(dropped)` (the tier's purge event) and
        clear `tier`'s purge journal. Their storage is released after. Returns what was dropped."""

    def anchors_within(self, ranges: Sequence[tuple[int, int]]) -> list[tuple[int, bytes]]:
        """Stored anchors inside these inclusive seq ranges."""

    def pending_purges(self) -> list[tuple[str, str]]:
        """(tier, journal state) of purges a crash interrupted before their purge event."""

    def add_checkpoint(self, row: CheckpointRow) -> None:
        """Store one signed checkpoint (its own small transaction)."""

    def newest_signing_key(self) -> tuple[str, str] | None:
        """(key_id, public key PEM) of the key that signed last, None for a new store."""

    def add_signing_key(self, key_id: str, public_pem: str, first_seq: int, added_at_us: int) -> None:
        """Record a public key that signs this chain from `first_seq` on."""

    def latest_checkpoint(self, prefer_key_id: str) -> CheckpointRow | None:
        """The newest checkpoint (by `prefer_key_id` where two keys signed the same seq)."""

    def public_keys(self, first_key_id: str) -> list[str]:
        """Every public key PEM that ever signed, `first_key_id`'s first."""

    def chain_of(self, event: dict[str, Any]) -> str:
        """The chain of an event this store returned (a follow cursor's key for it)."""

    def last_checkpoint_time(self) -> float:
        """Unix seconds of the newest signed checkpoint; 0 when none was signed yet."""

    def storage_bytes(self) -> int: ...

    def close(self) -> None: ...


class EventReader(Protocol):
    """The read side, one per thread; reads run beside the writer and see committed state only."""

    def search(self, spec: FilterSpec, *, order: str = "asc", limit: int = 0,
               page_size: int = 1000) -> Iterator[list[Row]]:
        """Rows (EVENT_COLUMNS order) matching `spec`, in (time, seq) order (`desc` newest first),
        at most `limit` (0 = all), in pages of `page_size`. spec.after_seq is ignored here."""

    def read_after(self, cursor: Cursor, spec: FilterSpec | None = None,
                   limit: int = 1000) -> list[tuple[str, list[Row]]]:
        """Events after `cursor`, per chain in seq order: [(chain, rows)], at most `limit` rows in
        all. Follow and forwarders advance their cursor to each chain's last row. Nothing is ever
        skipped: a chain's rows become visible in seq order (one writer per chain)."""

    def time_span(self, spec: FilterSpec) -> tuple[int, int] | None:
        """(oldest, newest) time of the events matching `spec`; None when none does."""

    def histogram(self, spec: FilterSpec, start_us: int, width_us: int, buckets: int) -> list[tuple[int, int, int]]:
        """(bucket index, level, count) of the matching events in [start, start + buckets * width)."""

    def event_id(self, chain: str, seq: int) -> str | None: ...

    def droppable(self, tier: str, default_cutoff_us: int | None,
                  namespace_cutoffs: dict[str, int | None]) -> list[Any]:
        """Partitions of `tier` (objects with .name, .tier, .max_seq, .count) whose every event has
        expired: the period is past the cutoff of every namespace in it (None = indefinite)."""

    def scan_partition(self, part: Any) -> DeleteResult:
        """What dropping `part` removes (up to its max_seq as listed): count, time span,
        namespaces, seq ranges and anchors (the link of every range end)."""

    def expired(self, tier: str, default_cutoff_us: int | None, namespace_cutoffs: dict[str, int | None],
                after: tuple[int, int], limit: int) -> list[tuple[int, int]]:
        """(time, seq) of the next `limit` events of `tier` older than their namespace's cutoff
        (None = kept indefinitely), after `after` in (time, seq) order."""

    def heads(self) -> Cursor:
        """chain -> last committed seq (cheap: forwarders poll it for their lag)."""

    def status(self) -> StoreStatus:
        """Event count, heads and bytes on disk (may count: not for hot loops)."""

    def close(self) -> None: ...


class CursorStore(Protocol):
    """A forwarder's durable cursor (saved atomically: a crash leaves the old or the new one)."""

    def load(self) -> Cursor: ...

    def save(self, cursor: Cursor) -> None: ...


class Lease(Protocol):
    """The right to run one forwarder. `held()` is checked before each send; SQLite's lease is
    always held (one collector per store); PostgreSQL's is an advisory lock another collector
    takes over when its holder dies."""

    def held(self) -> bool: ...

    def release(self) -> None: ...


class Backend(Protocol):
    """One open store. `writer` is created at open; `reader()` gives a new reader (callers keep
    one per thread); `created` tells whether this open created the store."""

    location: str                 # what log lines and events name (a path or a DSN without password)

    @property
    def writer(self) -> EventWriter: ...

    def reader(self) -> EventReader: ...

    def cursor_store(self, forwarder: str) -> CursorStore: ...

    def lease(self, forwarder: str) -> Lease: ...

    def settings_store(self) -> SettingsStore:
        """The settings managed live (collector/settings/), on a connection of their own."""

    def close(self) -> None: ...


def open_backend(config: Any, data_dir: str) -> Backend:
    """The store `config.storage` names (collector.toml [storage]), under `data_dir`."""
    backend = getattr(config.storage, "backend", "sqlite")
    if backend == "sqlite":
        from fleetlog.collector.store.sqlite import SqliteBackend
        return SqliteBackend(data_dir, config.storage.path, config.storage.synchronous, collector=config.node_name,
                             partition_period=config.storage.partition_period,
                             writer_shards=config.storage.writer_shards,
                             query_timeout=getattr(config.storage, "query_timeout", None))
    if backend == "postgresql":
        from fleetlog.collector.store.postgres_backend import PostgresBackend
        return PostgresBackend(config.storage.resolved_dsn(), config.node_name,
                               query_timeout=getattr(config.storage, "query_timeout", None))
    from fleetlog.common.errors import ConfigError
    raise ConfigError(f"collector.toml: storage.backend: unknown backend {backend!r}")


class Verification(Protocol):
    """What `fleetlog verify` prints of a store's tamper evidence (common/verify.py judges it)."""

    notes: list[str]

    def failure_lines(self) -> list[str]:
        """`[chain C: ]seq S: reason` of each bad chain; empty when every chain is sound."""

    def unsigned_notes(self) -> list[str]:
        """Events chained after the last checkpoint, not signed yet (not a failure)."""

    def summary(self) -> str: ...


def verify_store(backend: str, location: str, public_keys: Sequence[Ed25519PublicKey]) -> Verification:
    """`fleetlog verify --db PATH` (backend "sqlite": a data_dir, a copy of one or its main file;
    one public key) or `--dsn DSN` ("postgresql": every collector's chain; a key per collector, or
    none to use the keys the database records). Read-only; no collector needs to run. A SQLite
    store's failure is raised (Tampered), a PostgreSQL store's failures are reported per chain."""
    if backend == "sqlite":
        from fleetlog.collector.store.sqlite_verify import verify_db
        if len(public_keys) != 1:
            raise UsageError("a SQLite store has one chain: give its collector's public key, one")
        return verify_db(location, public_keys[0])
    if backend == "postgresql":
        from fleetlog.collector.store.pg_verify import verify_dsn
        return verify_dsn(location, list(public_keys))
    raise UsageError(f"verify: unknown store backend {backend!r}")
