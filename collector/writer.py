"""The single storage writer with group commit.

SQLite has one writer at a time, and with synchronous=FULL every commit costs an fsync. So all
ingest streams hand their prepared batches to one thread, which takes everything waiting (up to
`max_group_events`) into a single transaction and resolves each caller's future after COMMIT:
acknowledgements are never sent for uncommitted events, and fsyncs are shared under load.
Other write jobs (notes, purge steps, checkpoints) go through the same queue so they never race
with ingestion for the write lock.

When the storage cannot be written for a reason that passes (the disk is full, the file or its
file system turned read-only, an I/O error), the group is held and retried with backoff instead
of failed: acknowledgements stop, the admission budget fills, the agents keep their events in
their spools, and everything is committed once the storage is writable again, with no restart.
Meanwhile `fault` says why (for /readyz), one ERROR line is logged when it starts and one line
when it ends, and other write jobs fail at once with StorageError instead of waiting.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

from fleetlog.collector.store import EventWriter, IncomingEvents, StoreResult
from fleetlog.common.errors import StorageError
from fleetlog.common.timefmt import now_us

log = logging.getLogger("fleetlog.collector.writer")

_STOP = object()
# SQLite result codes of a storage that may become writable again without anyone touching the
# collector: space freed, a file system remounted read-write, a device back.
TRANSIENT = ("SQLITE_FULL", "SQLITE_IOERR", "SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_BUSY")
RETRY_MAX = 2.0
FAULT_LOG_INTERVAL = 60.0


def is_transient(exc: BaseException) -> bool:
    cause = exc.__cause__
    name = getattr(cause, "sqlite_errorname", "") or ""
    return isinstance(exc, StorageError) and name.startswith(TRANSIENT)


class _IngestJob:
    __slots__ = ("events", "future")

    def __init__(self, events: Sequence[IncomingEvents]):
        self.events = events
        self.future: Future[list[StoreResult]] = Future()


class _CallJob:
    __slots__ = ("fn", "future")

    def __init__(self, fn: Callable[[EventWriter], Any]):
        self.fn = fn
        self.future: Future[Any] = Future()


class StorageWriter:
    def __init__(self, store: EventWriter, max_group_events: int = 50_000,
                 on_commit: Callable[[list[StoreResult]], None] | None = None,
                 on_failed_commit: Callable[[BaseException], None] | None = None):
        self.store = store
        self.max_group_events = max_group_events
        self.on_commit = on_commit
        self.on_failed_commit = on_failed_commit   # each failed attempt, held and retried or not
        self._queue: queue.Queue[Any] = queue.Queue()
        self.fault: str | None = None          # why the storage is not writable now, or None
        self._stop_requested = False
        self._fault_logged_at = -FAULT_LOG_INTERVAL
        self._fault_logged = False
        self._thread = threading.Thread(target=self._run, name="storage-writer", daemon=True)
        self._thread.start()

    async def submit(self, events: Sequence[IncomingEvents]) -> list[StoreResult]:
        """Store and wait for the commit; raises StorageError when the transaction failed."""
        job = _IngestJob(events)
        self._queue.put(job)
        return await asyncio.wrap_future(job.future)

    async def call(self, fn: Callable[[EventWriter], Any]) -> Any:
        """Run fn(store) on the writer thread, between ingest transactions."""
        job = _CallJob(fn)
        self._queue.put(job)
        return await asyncio.wrap_future(job.future)

    def call_sync(self, fn: Callable[[EventWriter], Any]) -> Any:
        job = _CallJob(fn)
        self._queue.put(job)
        return job.future.result()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        """Finish every queued job, then stop the thread."""
        self._queue.put(_STOP)
        self._thread.join()

    def _run(self) -> None:
        pending: list[Any] = []
        while not self._stop_requested:
            job = pending.pop(0) if pending else self._queue.get()
            if job is _STOP:
                return
            if isinstance(job, _CallJob):
                self._run_call(job)
                continue
            group = [job]
            size = sum(len(e) for e in job.events)
            while size < self.max_group_events:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if not isinstance(nxt, _IngestJob):
                    pending.append(nxt)
                    break
                group.append(nxt)
                size += sum(len(e) for e in nxt.events)
            self._commit_group(group)

    def _run_call(self, job: _CallJob) -> None:
        if not job.future.set_running_or_notify_cancel():
            return
        try:
            job.future.set_result(job.fn(self.store))
        except BaseException as exc:  # noqa: BLE001 — handed to the caller, who decides
            job.future.set_exception(exc)

    def _commit_group(self, group: list[_IngestJob]) -> None:
        delay = 0.05
        while True:
            flat = [events for job in group for events in job.events]
            try:
                results = self.store.store_batch(flat, now_us())
                break
            except BaseException as exc:  # noqa: BLE001 — every waiting stream must hear of it
                if self.on_failed_commit is not None:
                    self.on_failed_commit(exc)
                if is_transient(exc) and not self._stop_requested:
                    self._hold(exc, group, delay)
                    delay = min(RETRY_MAX, delay * 2)
                    continue
                # Logged also in the middle of a fault: a batch that fails for good must be heard of.
                log.error("storage transaction failed, %d batches not acknowledged: %s", len(group), exc)
                for job in group:
                    _settle(job.future, exception=exc)
                return
        if self.fault is not None:
            log.log(logging.WARNING if self._fault_logged else logging.DEBUG,
                    "storage writable again; committed the %d batches held since: %s", len(group), self.fault)
            self.fault = None
        if self.on_commit is not None:
            try:
                self.on_commit(results)
            except Exception:  # a metrics/follow hook must never undo a commit
                log.exception("after-commit hook failed")
        offset = 0
        for job in group:
            _settle(job.future, result=results[offset:offset + len(job.events)])
            offset += len(job.events)


    def _hold(self, exc: BaseException, group: list[_IngestJob], delay: float) -> None:
        """Wait `delay` before retrying the group. Ingest jobs arriving meanwhile join it (the
        admission budget bounds them); other jobs fail at once; a stop ends the waiting."""
        if self.fault is None:
            # A nearly full disk flaps (a small commit fits in freed pages, the next does not):
            # one ERROR line per FAULT_LOG_INTERVAL, the episodes in between at debug level.
            now = time.monotonic()
            self._fault_logged = now - self._fault_logged_at >= FAULT_LOG_INTERVAL
            if self._fault_logged:
                self._fault_logged_at = now
            log.log(logging.ERROR if self._fault_logged else logging.DEBUG,
                    "storage not writable, holding %d batches and acknowledging nothing until it is "
                    "(agents keep their events): %s", len(group), exc)
        self.fault = str(exc)
        deadline = time.monotonic() + delay
        while (left := deadline - time.monotonic()) > 0:
            try:
                job = self._queue.get(timeout=left)
            except queue.Empty:
                return
            if job is _STOP:
                self._stop_requested = True
                return
            if isinstance(job, _IngestJob):
                group.append(job)
            elif job.future.set_running_or_notify_cancel():
                job.future.set_exception(StorageError(f"storage not writable: {self.fault}"))


def _settle(future: Any, result: Any = None, exception: BaseException | None = None) -> None:
    """Resolve an ingest job's future unless its stream went away meanwhile (the caller cancelled
    it): the batch stays committed and is deduplicated when the agent sends it again. A cancelled
    future must not end the writer thread."""
    if future.cancelled():
        return
    try:
        if exception is not None:
            future.set_exception(exception)
        else:
            future.set_result(result)
    except concurrent.futures.InvalidStateError:
        pass  # cancelled between the check and here
