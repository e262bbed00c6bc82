"""A small known dataset for search, export and bundle tests, written through the storage layer
into a real SQLite file (the collector opens it as its own store).

Every message starts with its label (`e01` ...), so a test states the exact set of labels a
filter must return.
"""

from __future__ import annotations

import json
import pathlib

from fleetlog.collector.store import IncomingEvents
from fleetlog.collector.store.sqlite import SqliteStore
from fleetlog.common.levels import parse_level
from fleetlog.common.timefmt import parse_rfc3339_us

HOST_IPS = {"web-1": "192.0.2.1", "web-2": "192.0.2.2", "db-1": "192.0.2.10"}

# label, host, time, level, request_id, user, action, namespace, app, log_type, message, fields
EVENTS = [
    ("e01", "web-1", "2025-12-01T10:00:00Z", "info", "req-100", "alice", "login", "default", "shop",
     "application", "user alice logged in from 10.0.0.7", {}),
    ("e02", "web-1", "2025-12-01T10:05:00Z", "warning", "req-100", "alice", "cart.update", "default", "shop",
     "application", "cart updated abc-123 items=3", {"items": 3}),
    ("e03", "web-2", "2025-12-01T11:15:30Z", "error", "req-101", "bob", "payment", "default", "shop",
     "application", "payment failed: card declined password=hunter2", {"card": "visa"}),
    ("e04", "db-1", "2025-12-01T11:20:00Z", "debug", "", "", "", "payments", "postgres",
     "system", "checkpoint complete abc 123", {}),
    ("e05", "db-1", "2025-12-02T00:00:00Z", "critical", "req-200", "bob_x", "", "payments", "postgres",
     "system", "disk full on /var/lib/pg", {}),
    ("e06", "web-1", "2025-12-02T08:30:00Z", "notice", "REQ-300", "carol@x", "", "default", "shop",
     "application", "Contact user@x for access; Authorization: Bearer eyJabc.def", {"token": "t0ps3cret"}),
    ("e07", "web-2", "2025-12-31T23:59:59.999999Z", "info", "req-1010", "admin", "system.shutdown", "default",
     "ops", "audit", "System shutting down 100%", {}),
    ("e08", "web-2", "2026-01-01T00:00:00Z", "alert", "req-101", "bob", "password.reset", "default", "shop",
     "security", "Password reset requested for dave", {}),
    ("e09", "web-1", "2025-11-30T23:59:59Z", "info", "", "dave", "", "staging", "shop",
     "application", "plain timeout after 30s", {}),
    ("e10", "db-1", "2025-12-01T14:35:00Z", "error", "", "svc-batch", "user.delete", "payments", "postgres",
     "audit", "deleted user erin (id 42)", {"api_key": "k-999"}),
]

ALL = {event[0] for event in EVENTS}


def build_store(path: pathlib.Path | str, collector: str = "collector-1") -> None:
    store = SqliteStore(str(path), "normal", collector=collector)
    batches = []
    for position, (label, host, time, level, rid, user, action, namespace, app, log_type, message,
                   fields) in enumerate(EVENTS):
        batches.append(IncomingEvents(
            host=host, host_ip=HOST_IPS[host], source_key=f"file:{app}", source=f"file:/var/log/{app}.log",
            namespace=namespace, log_type=log_type, position=[position], time_us=[parse_rfc3339_us(time)],
            level=bytes([int(parse_level(level))]), message=[f"{label} {message}"], request_id=[rid],
            user=[user], action=[action], app=[app], pid=[100 + position],
            fields_json=[json.dumps(fields) if fields else ""], flags=bytes(1),
            tier=["security" if log_type in ("audit", "security") else "general"]))
    store.store_batch(batches, parse_rfc3339_us("2026-01-02T00:00:00Z"))
    store.close()


def labels(events: list[dict]) -> set[str]:
    return {event["message"].split(" ", 1)[0] for event in events if event["message"][:1] == "e"
            and event["message"][1:3].isdigit()}
