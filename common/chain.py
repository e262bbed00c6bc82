"""The tamper-evidence hash chain (SPEC §4.7), shared by the collector and offline `verify`.

Canonical bytes of a stored event: the JSON object of every stored column except `hash` (the
names of collector.store.EVENT_COLUMNS), keys sorted, no whitespace (`,` and `:`), non-ASCII
kept as UTF-8, integers as stored (times in µs since the epoch, level 0-7, truncated 0/1), absent
values as null. link(n) = SHA-256(link(n-1) || canonical(event n)); the link before the first
event (or the anchor left by a purge) is recorded in a signed checkpoint. docs/tamper-evidence.md
describes the format for third-party verifiers.
"""

from __future__ import annotations

import hashlib
import json

GENESIS = b"\x00" * 32

# Sorted once, so building the dict in this order equals json.dumps(..., sort_keys=True).
CANONICAL_KEYS: tuple[str, ...] = tuple(sorted((
    "seq", "id", "time", "received_at", "host", "host_ip", "collector", "namespace", "source",
    "log_type", "app", "pid", "level", "request_id", "user", "action", "message", "fields",
    "tier", "truncated",
)))

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=False).encode


def canonical_bytes(event: dict) -> bytes:
    return _encode({key: event.get(key) for key in CANONICAL_KEYS}).encode()


def extend(previous: bytes, canonical: bytes) -> bytes:
    return hashlib.sha256(previous + canonical).digest()
