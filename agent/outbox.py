"""Sealed batches waiting for the collector's acknowledgement.

The shipper takes batches from an outbox, re-sends every unacknowledged one after a reconnect,
and acknowledges them by id. `MemoryOutbox` keeps them in memory; the disk spool implements the
same interface so that delivery survives an agent crash.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Protocol

from fleetlog.agent.batcher import SealedBatch


class Outbox(Protocol):
    async def put(self, batch: SealedBatch) -> None:
        """Accept a sealed batch (waits while full)."""

    async def next_unsent(self) -> SealedBatch:
        """The oldest batch not yet sent on the current connection (waits for one)."""

    def rewind(self) -> None:
        """A new connection: every unacknowledged batch is to be sent again, in order."""

    def ack(self, batch_id: int) -> SealedBatch | None:
        """The collector committed this batch; returns it (None if unknown or already acked)."""

    def pending_events(self) -> int: ...

    def pending_bytes(self) -> int: ...


class MemoryOutbox:
    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._batches: collections.OrderedDict[int, SealedBatch] = collections.OrderedDict()
        self._unsent: collections.deque[int] = collections.deque()
        self._bytes = 0
        self._events = 0
        self._changed = asyncio.Condition()

    async def put(self, batch: SealedBatch) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self._bytes < self.max_bytes or not self._batches)
            self._batches[batch.batch_id] = batch
            self._unsent.append(batch.batch_id)
            self._bytes += len(batch.payload)
            self._events += batch.events
            self._changed.notify_all()

    async def next_unsent(self) -> SealedBatch:
        async with self._changed:
            while True:
                while self._unsent:
                    batch = self._batches.get(self._unsent.popleft())
                    if batch is not None:
                        return batch
                await self._changed.wait()

    def rewind(self) -> None:
        self._unsent = collections.deque(self._batches.keys())

    def ack(self, batch_id: int) -> SealedBatch | None:
        batch = self._batches.pop(batch_id, None)
        if batch is not None:
            self._bytes -= len(batch.payload)
            self._events -= batch.events
            asyncio.get_running_loop().create_task(self._notify())
        return batch

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def pending_events(self) -> int:
        return self._events

    def pending_bytes(self) -> int:
        return self._bytes
