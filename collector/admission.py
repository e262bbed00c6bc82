"""A collector-wide bound on the events received but not yet committed.

Every decoded batch is Python objects until its transaction commits (about 1 KiB per event), and
each agent keeps several batches in flight. Without a bound, memory grows with the number of
agents and with how far the single writer is behind. An ingest stream takes its batch's share of
the budget before preparing it and gives it back after the commit; while the budget is spent the
stream reads no further message, so gRPC's flow control holds the agents back and the waiting
events stay in their spools, where they are safe.
"""

from __future__ import annotations

import asyncio


class EventBudget:
    def __init__(self, max_events: int):
        self.max_events = max_events
        self.in_use = 0
        self._freed = asyncio.Condition()

    async def acquire(self, events: int) -> None:
        """Wait until `events` fit. A batch larger than the whole budget is let in alone, so it
        cannot wait forever."""
        async with self._freed:
            await self._freed.wait_for(
                lambda: self.in_use == 0 or self.in_use + events <= self.max_events)
            self.in_use += events

    async def release(self, events: int) -> None:
        async with self._freed:
            self.in_use -= events
            self._freed.notify_all()
