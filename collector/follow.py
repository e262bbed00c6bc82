"""Follow: pages of matching events as they are committed, for `fleetlog search --follow` and the
console's live tail.

The writer thread wakes every follower after each commit; a follower then reads each chain in seq
order up to what it has committed, so nothing is missed or repeated while several collectors of a
cluster commit at once. Commits made elsewhere in a cluster wake nobody here and are found by a
poll every POLL_SECONDS.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fleetlog.collector.filters import FilterSpec
from fleetlog.collector.query import QueryEngine
from fleetlog.common.errors import UsageError

POLL_SECONDS = 1.0


class Followers:
    def __init__(self, query: QueryEngine, chain: str):
        self._query = query
        self._chain = chain
        self._committed = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """From now on, commits wake the followers (through `loop`)."""
        self._loop = loop

    def wake_from_thread(self) -> None:
        """The writer thread committed something."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._committed.set)

    async def start_cursor(self, after_seq: int, cursor_json: str) -> dict[str, int]:
        """Where a follow starts: the client's cursor, else after_seq on a one-chain store, else
        the heads (now). UsageError for a cursor that is not an object of chain -> seq."""
        if cursor_json:
            try:
                cursor = json.loads(cursor_json)
                if not isinstance(cursor, dict) or not all(isinstance(k, str) and isinstance(v, int) and v >= 0
                                                           for k, v in cursor.items()):
                    raise ValueError("not an object of chain -> seq")
            except ValueError as exc:
                raise UsageError(f"follow: cursor_json: {exc}") from None
            return cursor
        heads = (await asyncio.to_thread(self._query.status)).heads
        if after_seq and len(heads) <= 1:
            return {self._chain: after_seq}
        return heads

    async def pages(self, spec: FilterSpec, cursor: dict[str, int]
                    ) -> AsyncIterator[tuple[list[dict[str, Any]], dict[str, int]]]:
        """Pages of matching events after `cursor` (chain -> seq), each with the cursor past it;
        endless: the caller stops iterating."""
        while True:
            self._committed.clear()
            events, cursor = await asyncio.to_thread(self._query.read_after, spec, cursor)
            if events:
                yield events, cursor
                continue
            try:
                async with asyncio.timeout(POLL_SECONDS):
                    await self._committed.wait()
            except TimeoutError:
                pass  # poll anyway: a commit signalled before clear() is never missed for long
