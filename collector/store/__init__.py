"""Event storage behind one narrow interface (SPEC §7).

The collector talks to storage only through `Storage`; the SQLite backend is the embedded
default, and a PostgreSQL backend later is one more implementation of the same class shape.

Events enter as `IncomingEvents` (one per ingest chunk: what repeats is stored once, the
per-event values column-wise) and come back out as plain dicts with the field names of SPEC §3.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

# The stored columns, in the order of the `events` table and of every row tuple; SPEC §3 names.
EVENT_COLUMNS: tuple[str, ...] = (
    "seq", "id", "time", "received_at", "host", "host_ip", "collector", "namespace", "source",
    "log_type", "app", "pid", "level", "request_id", "user", "action", "message", "fields",
    "tier", "truncated",
)


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


class Storage(Protocol):
    """What the collector needs from an event store. Implementations are used from one writer
    thread for `store_batch`/`delete_events`, and from any number of reader threads for
    `search`/`expired`. Retention (collector/retention.py) is `expired` + `delete_events` in small
    chunks, so a backend never holds the writer for a whole purge."""

    def store_batch(self, batches: Sequence[IncomingEvents], received_at_us: int) -> list[StoreResult]:
        """Store every new event in one transaction; events already stored (same host, source_key,
        position) are counted as duplicates. Returns one result per input, after commit."""

    def search(self, query: Any) -> Iterator[dict[str, Any]]:
        """Events matching a compiled query, in the query's order."""

    def expired(self, tier: str, default_cutoff_us: int | None, namespace_cutoffs: dict[str, int | None],
                after: tuple[int, int], limit: int) -> list[tuple[int, int]]:
        """(time, seq) of the next `limit` events of `tier` older than their namespace's cutoff
        (None = kept indefinitely), after `after` in (time, seq) order. A reader-side call."""

    def delete_events(self, seqs: Sequence[int]) -> Any:
        """Delete these events in one transaction, keeping the chain verifiable (anchors for the
        gaps); returns the count, time range, seq ranges and anchors digest."""

    def close(self) -> None: ...
