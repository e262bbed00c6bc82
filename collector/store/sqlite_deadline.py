"""The query deadline of an SQLite reader ([storage] query_timeout).

A progress handler on each of the reader's connections aborts the statement running when the
armed deadline has passed; SQLite then raises "interrupted". A reader arms it while it works for
a search and disarms it while the consumer holds a page, so the bound is on the work between two
pages (an export of millions of matching rows is never cut), not on the whole stream.
"""

from __future__ import annotations

import contextlib
import math
import sqlite3
import time
from collections.abc import Iterator

from fleetlog.common.errors import QueryTimeout, StorageError

# VM instructions between two looks at the clock: about 20 ms of SQLite's work here, so the
# handler (which takes the GIL) costs nothing measurable and the deadline is kept to that.
CHECK_EVERY = 1_000_000


class QueryDeadline:
    def __init__(self, seconds: float | None):
        self.seconds = seconds
        self._until = math.inf
        self.fired = False   # the last statement was stopped by this deadline

    def attach(self, conn: sqlite3.Connection) -> None:
        if self.seconds:
            conn.set_progress_handler(self._expired, CHECK_EVERY)

    def arm(self) -> None:
        self._until = time.monotonic() + self.seconds if self.seconds else math.inf
        self.fired = False

    def disarm(self) -> None:
        self._until = math.inf

    @contextlib.contextmanager
    def bounded(self) -> Iterator[None]:
        self.arm()
        try:
            yield
        finally:
            self.disarm()

    def check(self) -> None:
        """For work outside SQLite (decoding and matching blocks): QueryTimeout once the armed
        deadline has passed."""
        if time.monotonic() > self._until:
            self.fired = True
            raise QueryTimeout(self.seconds or 0)

    def _expired(self) -> int:
        if time.monotonic() > self._until:
            self.fired = True
            return 1
        return 0

    def error(self, exc: sqlite3.Error, what: str) -> StorageError:
        """The error to raise for `exc`: QueryTimeout when the deadline stopped the statement."""
        if self.fired and isinstance(exc, sqlite3.OperationalError) and "interrupted" in str(exc):
            return QueryTimeout(self.seconds or 0)
        return StorageError(f"{what}: {exc}")

