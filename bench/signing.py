"""What tamper evidence costs (issue target: under 10 % of throughput).

200,000 e2e-shaped events through the real storage layer (`SqliteStore.store_batch`, WAL,
`synchronous = full`, 20,000 events per transaction) with the collector's Signer attached: the
hash chain plus an Ed25519 checkpoint every 1,000 events inside each transaction (the default).
The chain cannot be switched off (it is part of every row), so instead of a second run without
it, the run times its two steps where they happen: `chain.link_columns` (the canonical form and
two SHA-256 per event for the whole transaction, kept by column; C where common/_chain_native was
built, as `make install` does) and the signer's checkpointer. The loss is their share of the run's time, which
is what throughput would gain without them.
"""

from __future__ import annotations

import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.common import BenchContext, Row
from fleetlog.collector.signing import Signer
from fleetlog.collector.store import IncomingEvents
from fleetlog.collector.store.sqlite import SqliteStore
from fleetlog.common import chain

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


class _Timed:
    """Wraps a function and adds up the seconds spent in it."""

    def __init__(self, function):
        self.function, self.seconds = function, 0.0

    def __call__(self, *args):
        started = time.perf_counter()
        try:
            return self.function(*args)
        finally:
            self.seconds += time.perf_counter() - started


def _measure(path: str) -> tuple[float, float, float]:
    """(events/s, seconds in the chain step, seconds in checkpoints) of one signed run."""
    store = SqliteStore(path, "full", collector="bench-collector")
    Signer(Ed25519PrivateKey.generate(), "bench-collector", every=1000).attach(store)
    checkpoints = store.checkpointer = _Timed(store.checkpointer)
    links = chain.link_columns = _Timed(chain.link_columns)  # the writer calls it through the module
    chunks = _chunks(0)
    try:
        started = time.perf_counter()
        for first in range(0, len(chunks), PER_TRANSACTION):
            store.store_batch(chunks[first:first + PER_TRANSACTION], 1_764_686_300_000_000)
        elapsed = time.perf_counter() - started
    finally:
        chain.link_columns = links.function
        store.close()
    return EVENTS / elapsed, links.seconds, checkpoints.seconds


def run(ctx: BenchContext) -> list[Row]:
    folder = ctx.work / "signing"
    folder.mkdir(parents=True, exist_ok=True)
    rate, chain_seconds, checkpoint_seconds = _measure(str(folder / "signed.db"))
    chain_us, checkpoint_us = chain_seconds * 1e6 / EVENTS, checkpoint_seconds * 1e6 / EVENTS
    loss = (chain_us + checkpoint_us) / (1e6 / rate)
    return [
        Row("storage layer, chain + checkpoints every 1,000 (default)", f"{rate:,.0f} events/s"),
        Row(f"in it: hash chain (canonical form + 2 x SHA-256, {'C' if chain.NATIVE else 'pure Python'})",
            f"{chain_us:.2f} µs/event"),
        Row("in it: checkpoints (Ed25519 signature + row)", f"{checkpoint_us:.2f} µs/event"),
        Row("throughput lost to chain + checkpoints", f"{loss * 100:.1f} %", "< 10 %", loss < 0.10),
    ]
