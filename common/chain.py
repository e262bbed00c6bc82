"""The tamper-evidence hash chain (contract §4.7), shared by the collector and offline `verify`.

Canonical bytes of a stored event: the JSON object of every stored column except `hash` (the
names of collector.store.EVENT_COLUMNS), keys sorted, no whitespace (`,` and `:`), non-ASCII
kept as UTF-8, integers as stored (times in µs since the epoch, level 0-7, truncated 0/1), absent
values as null.

    digest(n) = SHA-256(canonical(event n))
    link(n)   = SHA-256(link(n-1) || digest(n)),   link(0) = 32 zero bytes

Hashing the digest rather than the bytes lets a partial export (a bundle) prove its events
against a signed checkpoint by carrying only the 32-byte digests of the events it leaves out.
A purge keeps, for every run of deleted events, the link of the run's last event in
chain_anchors, so what remains still verifies. docs/tamper-evidence.md
describes the format for third-party verifiers.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from json.encoder import encode_basestring

try:  # the writer's step in C (setup.py builds it where OpenSSL's headers are installed)
    from fleetlog.common._chain_native import link_columns as _native_link_columns
    from fleetlog.common._chain_native import link_rows as _native_link_rows
except ImportError:  # pragma: no cover - exercised by tests through _python_link_rows
    _native_link_rows = None  # type: ignore[assignment]  # not built: link_rows takes the Python step
    _native_link_columns = None  # type: ignore[assignment]

GENESIS = b"\x00" * 32

# Sorted once, so building the dict in this order equals json.dumps(..., sort_keys=True).
CANONICAL_KEYS: tuple[str, ...] = tuple(sorted((
    "seq", "id", "time", "received_at", "host", "host_ip", "collector", "namespace", "source",
    "log_type", "app", "pid", "level", "request_id", "user", "action", "message", "fields",
    "tier", "truncated",
)))

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=False).encode

# A fast path to the same bytes as json.dumps(event, sort_keys=True, separators=(",", ":"),
# ensure_ascii=False) for the stored value types: each value through `_json_scalar` (strings via
# json's C escaper), then this template in CANONICAL_KEYS order. tests/unit/test_chain.py checks
# the two agree; verify and the writer's Python fallback use it.
NULL = "null"
_TEMPLATE = "{" + ",".join(f'"{key}":%s' for key in CANONICAL_KEYS) + "}"


def _json_scalar(value) -> str:
    if value is None:
        return NULL
    if value.__class__ is str:
        return encode_basestring(value)
    if value is True or value is False:
        return "true" if value else "false"
    return str(int(value))


def canonical_bytes(event: dict) -> bytes:
    """Canonical bytes of a stored-value event dict (the reference form; see canonical_values)."""
    return _encode({key: event.get(key) for key in CANONICAL_KEYS}).encode()


def canonical_values(values: Sequence) -> bytes:
    """Canonical bytes from stored values in CANONICAL_KEYS order."""
    return (_TEMPLATE % tuple(map(_json_scalar, values))).encode()


def link_rows(head: bytes, rows: list[list], columns: Sequence[int], link_column: int) -> bytes:
    """Extend the chain over `rows` (the writer's new events, in seq order): row[columns[k]] is
    the value of CANONICAL_KEYS[k]; each row's link is stored in row[link_column]. Returns the
    last link. One call per transaction: the C version does the whole batch without a
    Python-level call per event (its cost is what issue 7's < 10 % target measures)."""
    if _native_link_rows is not None:
        return _native_link_rows(head, rows, CANONICAL_KEYS, tuple(columns), link_column)
    return _python_link_rows(head, rows, columns, link_column)


NATIVE = _native_link_rows is not None  # shown by `make bench` beside the chain's cost


def _python_link_rows(head: bytes, rows: list[list], columns: Sequence[int], link_column: int) -> bytes:
    """The same as the C version, for where it could not be built: about 5 µs per event instead
    of 0.7 (one Python call per value)."""
    links = []
    for row in rows:
        head = extend(head, canonical_values([row[c] for c in columns]))
        links.append(head)
    for row, link in zip(rows, links):  # every row or none, as in C
        row[link_column] = link
    return head


def link_columns(head: bytes, table: list[list], columns: Sequence[int], link_column: int) -> bytes:
    """link_rows over a table kept by column (table[c][i]: row i's value of column c, every
    column as long): the links go into table[link_column]. The writer keeps a transaction's new
    events so, and makes no list an event."""
    if _native_link_columns is not None:
        return _native_link_columns(head, table, CANONICAL_KEYS, tuple(columns), link_column)
    return _python_link_columns(head, table, columns, link_column)


def _python_link_columns(head: bytes, table: list[list], columns: Sequence[int], link_column: int) -> bytes:
    links = []
    for values in zip(*(table[c] for c in columns)):
        head = extend(head, canonical_values(values))
        links.append(head)
    table[link_column][:] = links
    return head


def digest(canonical: bytes) -> bytes:
    return hashlib.sha256(canonical).digest()


def extend(previous: bytes, canonical: bytes) -> bytes:
    """link(n) = SHA-256(link(n-1) || SHA-256(canonical(event n)))."""
    return hashlib.sha256(previous + hashlib.sha256(canonical).digest()).digest()
