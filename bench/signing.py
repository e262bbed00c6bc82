"""What tamper evidence costs (issue target: under 10 % of throughput).

Three measurements on the same 200,000 e2e-shaped events, through the real storage layer
(`SqliteStore.store_batch`, WAL, `synchronous = full`, 20,000 events per transaction):

- with the collector's Signer attached: hash chain + an Ed25519 checkpoint every 1,000 events
  inside the transaction (the default configuration);
- without a Signer: the hash chain only (it cannot be switched off: it is part of every row);
- the hash chain's own work, timed alone: the canonical form through the writer's template and the
  two SHA-256 per event, exactly what `_rows_for` adds per row.

The loss is (chain alone + checkpoint difference) / time per event with everything on.
"""

from __future__ import annotations

import hashlib
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.common import BenchContext, Row
from collector.signing import Signer
from collector.store import IncomingEvents
from collector.store.sqlite import SqliteStore
from common import chain
from common.ids import event_id

EVENTS = 200_000
CHUNK = 5_000
PER_TRANSACTION = 4


def _chunks(first_position: int) -> list[IncomingEvents]:
    chunks = []
    base = 1_764_686_245_000_000
    for start in range(0, EVENTS, CHUNK):
        ids = range(first_position + start, first_position + start + CHUNK)
        chunks.append(IncomingEvents(
            host="bench-agent", host_ip="127.0.0.1", source_key="file:bench", source="file:/var/log/app.log",
            namespace="default", log_type="application", position=[i * 121 for i in ids],
            time_us=[base + i for i in ids], level=bytes([6]) * CHUNK,
            message=[f"Authentication SUCCESS via LDAP seq={i:09d}" for i in ids],
            request_id=[f"r{i % 9973:05d}" for i in ids], user=[f"user{i % 97}@example.com" for i in ids],
            action=[""] * CHUNK, app=[""] * CHUNK, pid=[0] * CHUNK,
            fields_json=[f'{{"seq":"{i:09d}"}}' for i in ids], flags=bytes(CHUNK), tier=["general"] * CHUNK))
    return chunks


def _store_rate(path: str, signed: bool) -> float:
    store = SqliteStore(path, "full", collector="bench-collector")
    if signed:
        Signer(Ed25519PrivateKey.generate(), "bench-collector", every=1000).attach(store)
    chunks = _chunks(0)
    started = time.perf_counter()
    for first in range(0, len(chunks), PER_TRANSACTION):
        store.store_batch(chunks[first:first + PER_TRANSACTION], 1_764_686_300_000_000)
    elapsed = time.perf_counter() - started
    store.close()
    return EVENTS / elapsed


def _chain_alone_seconds() -> float:
    """The per-event chain work of the writer, on prebuilt argument tuples."""
    template, quote, opt, null = chain.TEMPLATE, chain.quote, chain.quote_optional, chain.NULL
    rows = [(null, null, quote("bench-collector"), quote(f'{{"seq":"{i:09d}"}}'), quote("bench-agent"),
             quote("127.0.0.1"), quote(event_id("bench-agent", "file:bench", i * 121)), 6, quote("application"),
             f"Authentication SUCCESS via LDAP seq={i:09d}", quote("default"), null, 1_764_686_300_000_000,
             opt(f"r{i % 9973:05d}"), i + 1, quote("file:/var/log/app.log"), quote("general"),
             1_764_686_245_000_000 + i, 0, opt(f"user{i % 97}@example.com")) for i in range(EVENTS)]
    sha256, head = hashlib.sha256, chain.GENESIS
    started = time.perf_counter()
    for row in rows:
        values = row[:9] + (quote(row[9]),) + row[10:]    # the message is quoted per event, as in the writer
        head = sha256(head + sha256((template % values).encode()).digest()).digest()
    return time.perf_counter() - started


def run(ctx: BenchContext) -> list[Row]:
    folder = ctx.work / "signing"
    folder.mkdir(parents=True, exist_ok=True)
    signed = _store_rate(str(folder / "signed.db"), signed=True)
    unsigned = _store_rate(str(folder / "unsigned.db"), signed=False)
    chain_us = _chain_alone_seconds() * 1e6 / EVENTS
    total_us = 1e6 / signed
    checkpoint_us = max(0.0, total_us - 1e6 / unsigned)
    loss = (chain_us + checkpoint_us) / total_us
    return [
        Row("storage layer, chain + checkpoints every 1,000 (default)", f"{signed:,.0f} events/s"),
        Row("storage layer, chain only (no checkpoints)", f"{unsigned:,.0f} events/s"),
        Row("hash chain alone (canonical form + 2 x SHA-256)", f"{chain_us:.2f} µs/event"),
        Row("throughput lost to chain + checkpoints", f"{loss * 100:.1f} %", "< 10 %", loss < 0.10),
    ]
