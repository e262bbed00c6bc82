"""Events the collector writes about itself (contract §1, §4.6): start/stop, notes, audit of
searches, purges, denials. They carry host = the collector's node_name, source = "collector",
log_type = "audit", namespace = "_collector" (a note: its author's namespace), and are stored
whatever the level thresholds say.

Their dedup position is the seq they will get, so each is unique within the internal origin.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from fleetlog.collector.store import EventWriter, IncomingEvents, StoreResult
from fleetlog.common.levels import Level
from fleetlog.common.timefmt import now_us

INTERNAL_SOURCE = "collector"
INTERNAL_SOURCE_KEY = "collector:internal"
# The collector's own events live in a namespace of their own, which no agent may write and no
# namespace role may hold (collector/identity.py): only admin and auditor read the audit trail.
# Notes are the exception: they go to their author's namespace (collector/own_events.py).
COLLECTOR_NAMESPACE = "_collector"


@dataclass
class InternalEvent:
    action: str
    message: str
    level: Level = Level.INFO
    tier: str = "security"
    user: str = ""
    fields: dict[str, Any] = field(default_factory=dict)
    time_us: int = 0


def append_internal(store: EventWriter, node_name: str, events: list[InternalEvent],
                    namespace: str = COLLECTOR_NAMESPACE) -> StoreResult:
    """Store internal events in one transaction; call on the writer thread."""
    now = now_us()
    return store.store_batch([internal_batch(store, node_name, events, namespace, now)], now)[0]


def internal_batch(store: EventWriter, node_name: str, events: list[InternalEvent],
                   namespace: str = COLLECTOR_NAMESPACE, now: int = 0) -> IncomingEvents:
    """Internal events as one ingest chunk, to store next (on the writer thread)."""
    first = store.last_seq + 1
    now = now or now_us()
    return IncomingEvents(
        host=node_name, host_ip="", source_key=INTERNAL_SOURCE_KEY, source=INTERNAL_SOURCE,
        namespace=namespace, log_type="audit",
        position=list(range(first, first + len(events))),
        time_us=[e.time_us or now for e in events],
        level=bytes(int(e.level) for e in events),
        message=[e.message for e in events],
        request_id=[""] * len(events),
        user=[e.user for e in events],
        action=[e.action for e in events],
        app=["fleetlog-collector"] * len(events),
        pid=[0] * len(events),
        fields_json=[json.dumps(e.fields, ensure_ascii=False, separators=(",", ":")) if e.fields else ""
                     for e in events],
        flags=bytes(len(events)),
        tier=[e.tier for e in events],
    )
