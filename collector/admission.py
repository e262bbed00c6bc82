"""A collector-wide bound on what was received but not yet committed: events and bytes.

Every decoded batch is Python objects until its transaction commits (about 1 KiB per event), and
each agent keeps several batches in flight. Without a bound, memory grows with the number of
agents and with how far the single writer is behind. Events alone are not enough: a peer that
sends few, huge events (or maximum-size messages as fast as it can) would pass an event budget
and still fill memory, so bytes (the message as received plus a compressed payload's expanded
size) are counted too. An ingest stream takes its batch's share before turning it into events
and gives it back after the commit; while the budget is spent the stream reads no further
message, so gRPC's flow control holds the agents back and the waiting events stay in their
spools, where they are safe.
"""

from __future__ import annotations

import asyncio


class EventBudget:
    def __init__(self, max_events: int, max_bytes: int = 1 << 62):
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.in_use = 0
        self.bytes_in_use = 0
        self._freed = asyncio.Condition()

    def _fits(self, events: int, nbytes: int) -> bool:
        # A batch larger than the whole budget is let in alone, so it cannot wait forever.
        if self.in_use <= 0 and self.bytes_in_use <= 0:
            return True
        return self.in_use + events <= self.max_events and self.bytes_in_use + nbytes <= self.max_bytes

    async def acquire(self, events: int, nbytes: int = 0) -> None:
        """Wait until `events` and `nbytes` fit."""
        async with self._freed:
            await self._freed.wait_for(lambda: self._fits(events, nbytes))
            self.in_use += events
            self.bytes_in_use += nbytes

    def add(self, events: int, nbytes: int = 0) -> None:
        """Take more without waiting: what a batch turned out to cost once decoded (its events, a
        compressed payload's expansion) on top of its message bytes, which were acquired before
        decoding. Waiting here, holding the decoded message, would keep two copies per stream;
        the overshoot is at most one batch per stream and stops everyone's next read."""
        self.in_use += events
        self.bytes_in_use += nbytes

    async def wait_for_room(self) -> None:
        """Wait while the byte budget is spent, without taking any of it: a stream calls this
        before reading its next message, so a flood stops being pulled off the sockets (the
        bytes stay in the peers) instead of piling up here as messages waiting for admission.
        Nothing is reserved, so idle streams never hold budget they do not use."""
        async with self._freed:
            await self._freed.wait_for(lambda: self.bytes_in_use < self.max_bytes or self.in_use == 0)

    async def release(self, events: int, nbytes: int = 0) -> None:
        async with self._freed:
            self.in_use -= events
            self.bytes_in_use -= nbytes
            self._freed.notify_all()
