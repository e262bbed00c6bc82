"""What tamper evidence costs (issue target: under 10 % of throughput).

200,000 e2e-shaped events through the real storage layer (`SqliteStore.store_batch`, WAL,
`synchronous = full`, 20,000 events per transaction) with the collector's Signer attached: the
hash chain plus an Ed25519 checkpoint every 1,000 events inside each transaction (the default).
The chain cannot be switched off (it is part of every row), so the run without it replaces
`chain.link_columns` with a step that writes the head as every link (the same rows and blocks,
no canonical form, no SHA-256) and attaches no signer. The writer makes the links in a thread of
its own while it encodes the blocks, so the time spent in the two steps (shown too) is not what
throughput loses: the loss is 1 - signed / unsigned rate, the median of PAIRS alternated pairs.
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
PAIRS = 5
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


def _unchained(head: bytes, table: list[list], columns, link_column: int) -> bytes:
    """link_columns without the chain's work: every link is the head."""
    table[link_column][:] = [head] * len(table[link_column])
    return head


def _measure(path: str, signed: bool = True) -> tuple[float, float, float]:
    """(events/s, seconds in the chain step, seconds in checkpoints) of one run."""
    store = SqliteStore(path, "full", collector="bench-collector")
    checkpoints = links = None
    if signed:
        Signer(Ed25519PrivateKey.generate(), "bench-collector", every=1000).attach(store)
        checkpoints = store.checkpointer = _Timed(store.checkpointer)
        links = _Timed(chain.link_columns)
    original = chain.link_columns
    chain.link_columns = links if links is not None else _unchained  # the writer calls it through the module
    chunks = _chunks(0)
    try:
        started = time.perf_counter()
        for first in range(0, len(chunks), PER_TRANSACTION):
            store.store_batch(chunks[first:first + PER_TRANSACTION], 1_764_686_300_000_000)
        elapsed = time.perf_counter() - started
    finally:
        chain.link_columns = original
        store.close()
    return EVENTS / elapsed, links.seconds if links else 0.0, checkpoints.seconds if checkpoints else 0.0


def run(ctx: BenchContext) -> list[Row]:
    import statistics

    folder = ctx.work / "signing"
    folder.mkdir(parents=True, exist_ok=True)
    signed_runs, losses = [], []
    for pair in range(PAIRS):
        signed_runs.append(_measure(str(folder / f"signed-{pair}.db")))
        unsigned_rate, _, _ = _measure(str(folder / f"unsigned-{pair}.db"), signed=False)
        losses.append(1 - signed_runs[-1][0] / unsigned_rate)
    rate, chain_seconds, checkpoint_seconds = sorted(signed_runs)[len(signed_runs) // 2]
    chain_us, checkpoint_us = chain_seconds * 1e6 / EVENTS, checkpoint_seconds * 1e6 / EVENTS
    loss = statistics.median(losses)
    return [
        Row("storage layer, chain + checkpoints every 1,000 (default)", f"{rate:,.0f} events/s"),
        Row(f"in it: hash chain (canonical form + 2 x SHA-256, {'C' if chain.NATIVE else 'pure Python'})",
            f"{chain_us:.2f} µs/event (in a thread beside the blocks' encoding)"),
        Row("in it: checkpoints (Ed25519 signature + row)", f"{checkpoint_us:.2f} µs/event"),
        Row("throughput lost to chain + checkpoints",
            f"{loss * 100:.1f} % (median; pairs: {', '.join(f'{x * 100:.1f}' for x in losses)})", "< 10 %",
            loss < 0.10),
    ]
