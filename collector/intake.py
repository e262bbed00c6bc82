"""A batch's way from the wire to its commit, below the gRPC handler: the admission budget
(collector/admission.py), unpacking within the ingest limits, the namespace threshold and tiers
(collector/ingest.py), event times a peer may set (collector/event_times.py), the storage writer,
and the counts kept per node.

The handler takes a message's bytes from the budget before decoding it (`admit`), hands each batch
to `prepare`, and awaits `commit` for its acknowledgement. Whatever happens, the budget a batch
took is given back exactly once: by `prepare` when the batch is refused, else by `commit`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from fleetlog.collector.admission import EventBudget
from fleetlog.collector.classify import Classifier
from fleetlog.collector.denials import Denials
from fleetlog.collector.event_times import TimePolicy, bound_times
from fleetlog.collector.identity import Caller
from fleetlog.collector.ingest import (
    BadBatch,
    IngestLimits,
    Origin,
    PreparedBatch,
    RelayRefused,
    prepare_chunks,
    unpack,
)
from fleetlog.collector.metrics import CollectorMetrics
from fleetlog.collector.nodes import Nodes
from fleetlog.collector.writer import StorageWriter
from fleetlog.common.pb.fleetlog.v1 import fleetlog_pb2 as pb
from fleetlog.common.timefmt import now_us


@dataclass
class Admitted:
    """A prepared batch waiting for its commit, with the budget it holds until then."""

    prepared: PreparedBatch
    host: str
    cost: tuple[int, int]   # (events, bytes) taken from the admission budget
    started: float          # time.perf_counter() when it arrived


@dataclass(frozen=True)
class Committed:
    stored: int
    duplicates: int
    dropped: int     # below the level threshold or in a namespace the sender may not write


class Intake:
    def __init__(self, *, budget: EventBudget, limits: IngestLimits, classifier: Callable[[], Classifier],
                 writer: StorageWriter, nodes: Nodes, metrics: CollectorMetrics, denials: Denials,
                 times: TimePolicy | None = None):
        self._budget = budget
        self._limits = limits
        self._classifier = classifier   # the config as last reloaded
        self._writer = writer
        self._nodes = nodes
        self._metrics = metrics
        self._denials = denials
        self._times = times or TimePolicy()

    async def admit(self, nbytes: int) -> None:
        """Wait until a message of `nbytes` fits the budget, and take its share."""
        await self._budget.acquire(0, nbytes)

    async def wait_for_room(self) -> None:
        """Wait while the budget is spent, taking nothing (see EventBudget.wait_for_room)."""
        await self._budget.wait_for_room()

    async def release(self, events: int, nbytes: int) -> None:
        """Give back a share taken with `admit` (a message that was not a batch)."""
        await self._budget.release(events, nbytes)

    async def prepare(self, batch: pb.Batch, wire_bytes: int, origin: Origin) -> Admitted:
        """Unpack, check and classify a batch whose `wire_bytes` the caller admitted. Raises
        BadBatch: nothing of the batch is stored, and its budget is given back."""
        started = time.perf_counter()
        self._nodes.batch_arrived(origin.host, batch.sent_at_us)
        cost = (0, wire_bytes)
        try:
            unpacked = unpack(batch, self._limits)
            del batch
            cost = (unpacked.events, wire_bytes + unpacked.payload_bytes)
            self._budget.add(unpacked.events, unpacked.payload_bytes)
            prepared = prepare_chunks(unpacked, origin, self._classifier())
            del unpacked
            for reason, count in bound_times(prepared.events, self._times.bounds(now_us())).items():
                self._metrics.time_adjusted.labels(reason).inc(count)
        except BadBatch:
            await self._budget.release(*cost)
            raise
        except RelayRefused as exc:
            await self._budget.release(*cost)
            self._metrics.requests_rejected.labels("relay_denied").inc()
            self._denials.record_soon(Caller(origin.host, "agent", self._nodes.get(origin.host).ip), "relay", str(exc))
            raise
        self._nodes.received(origin.host, prepared)
        if prepared.denied:
            for namespace in prepared.denied_namespaces:
                self._denials.record_soon(Caller(origin.host, "agent", self._nodes.get(origin.host).ip),
                                          "ingest", f"may not write namespace {namespace!r}")
        return Admitted(prepared, origin.host, cost, started)

    async def commit(self, admitted: Admitted) -> Committed:
        """Store the batch and wait for the commit, then give its budget back. Raises
        StorageError when the transaction failed (the budget is given back too)."""
        prepared = admitted.prepared
        try:
            results = await self._writer.submit(prepared.events) if prepared.events else []
        finally:
            await self._budget.release(*admitted.cost)
        stored = sum(r.stored for r in results)
        duplicates = sum(r.duplicates for r in results)
        self._metrics.ingest_batch_seconds.observe(time.perf_counter() - admitted.started)
        self._nodes.stored(admitted.host, stored, duplicates)
        return Committed(stored, duplicates, prepared.dropped_below_level + prepared.denied)
