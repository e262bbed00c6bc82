"""Sealed batches waiting for the collector's acknowledgement.

The shipper takes batches from an outbox, re-sends every unacknowledged one after a reconnect,
and acknowledges them by id. The disk spool (agent/spool.py) implements this interface, so that
delivery survives an agent crash.
"""

from __future__ import annotations

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
