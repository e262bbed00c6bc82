"""Runs one forwarder: read stored events after its cursor in seq order, filter, send, and move
the durable cursor only past what the sink confirmed.

Each forwarder has its own thread and its own storage reader, so a slow or dead
destination holds up nothing but itself: ingestion never waits for a forwarder, and forwarders
never wait for each other. The storage writer's after-commit hook wakes them (`wake`); a one
second poll covers a missed wake-up.

Delivery is at-least-once: after a failure the sink is reopened and everything after the last
confirmed cursor is sent again. The cursor (collector.store.Cursor: chain -> seq, kept by the
backend's CursorStore) is saved at most every `save_interval` while busy and at once when idle or
stopping, so a collector crash re-sends at most that much. The forwarder sends only while it
holds its lease (always, for SQLite; one collector of a cluster at a time, for PostgreSQL).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from fleetlog.collector.forward.base import Sink
from fleetlog.collector.forward.transport import DeliveryError
from fleetlog.collector.metrics import CollectorMetrics
from fleetlog.collector.store import Backend, Cursor, EventReader, row_to_event
from fleetlog.common.errors import FleetlogError, StorageError
from fleetlog.common.event import present
from fleetlog.common.levels import Level

log = logging.getLogger("fleetlog.collector.forward")

# record(action, message, level): store an event about the forwarder itself (outage, recovery).
Recorder = Callable[[str, str, Level], None]


class ForwarderRunner:
    batch_events = 1000
    max_unconfirmed_batches = 4       # then wait for the receiver to acknowledge before sending more
    save_interval = 0.5
    backoff_min, backoff_max = 0.2, 10.0

    def __init__(self, name: str, config: Any, sink: Sink, backend: Backend,
                 metrics: CollectorMetrics, record: Recorder | None = None):
        self.name, self.config, self.sink, self.backend = name, config, sink, backend
        self.filter = config.filters
        self.cursor_store = backend.cursor_store(name)
        self.lease = backend.lease(name)
        self.metrics, self.record = metrics, record
        self.confirmed: Cursor = self.cursor_store.load()   # raises StorageError for a damaged cursor
        self.saved = dict(self.confirmed)
        self.state = "starting"
        self.last_error, self.last_error_at = "", 0.0   # the newest delivery error, kept after recovery
        self.lag = 0
        self.failures = 0
        self.wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"forwarder-{name}", daemon=True)
        self._events = metrics.forward_events.labels(name)
        self._errors = metrics.forward_errors.labels(name)
        self._lag = metrics.forward_lag.labels(name)
        self._errors.inc(0)

    def start(self) -> None:
        self._thread.start()

    def request_stop(self) -> None:
        self._stopping.set()
        self.wake.set()

    def join(self, timeout: float) -> bool:
        """Wait for the thread; True when it has ended."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        stop_runners([self], timeout)

    # -- the loop ------------------------------------------------------------------------------

    def _run(self) -> None:
        reader: EventReader | None = None
        backoff = self.backoff_min
        sent = dict(self.confirmed)    # cursor past what was handed to the sink (confirmed or not)
        unconfirmed_batches = unconfirmed_events = 0
        holding = False
        try:
            while not self._stopping.is_set():
                try:
                    if reader is None:
                        reader = self.backend.reader()
                    self.wake.clear()
                    if not self.lease.held():
                        self.state = "standby: another collector holds the lease"
                        holding = False
                        self.wake.wait(1.0)
                        continue
                    if not holding:
                        # The lease was just taken (over): another collector may have delivered
                        # and saved meanwhile, so continue from the cursor as stored.
                        self.confirmed = self.cursor_store.load()
                        self.saved, sent = dict(self.confirmed), dict(self.confirmed)
                        unconfirmed_batches = unconfirmed_events = 0
                        holding = True
                    pages = reader.read_after(sent, None, self.batch_events)
                    if pages:
                        rows = [row for _, chain_rows in pages for row in chain_rows]
                        selected = [e for e in (present(row_to_event(r)) for r in rows) if self.filter.accepts(e)]
                        if selected:
                            self.sink.send(selected)
                            unconfirmed_batches += 1
                            unconfirmed_events += len(selected)
                        sent = {**sent, **{chain: chain_rows[-1][0] for chain, chain_rows in pages}}
                        wait = unconfirmed_batches >= self.max_unconfirmed_batches
                        if self.sink.delivered(wait):
                            self._confirm(sent, unconfirmed_events)
                            unconfirmed_batches = unconfirmed_events = 0
                        self._note_lag(reader)
                        continue
                    if sent != self.confirmed or unconfirmed_events:
                        self.sink.delivered(True)
                        self._confirm(sent, unconfirmed_events)
                        unconfirmed_batches = unconfirmed_events = 0
                    self._save(force=True)
                    self._note_lag(reader)
                    if self.state != "ok":
                        self._recovered()
                    backoff = self.backoff_min
                    self.wake.wait(1.0)
                except (DeliveryError, FleetlogError, OSError) as exc:
                    self._errors.inc()
                    self._failed(exc)
                    self.sink.close()
                    sent = dict(self.confirmed)      # resend everything not confirmed
                    unconfirmed_batches = unconfirmed_events = 0
                    if isinstance(exc, StorageError) and reader is not None:
                        reader.close()
                        reader = None
                    self._pause(reader, backoff * random.uniform(0.8, 1.2))
                    backoff = min(backoff * 2, self.backoff_max)
            # Stopping: keep what the receiver already acknowledged, resend the rest next start.
            try:
                if self.sink.delivered(False):
                    self._confirm(sent, unconfirmed_events)
            except DeliveryError:
                pass  # unconfirmed: resent after the restart
            self._save(force=True)
        except Exception:  # a bug must not kill the thread silently
            log.exception("forwarder %s stopped by an unexpected error", self.name)
            self.state = "crashed"
        finally:
            self.sink.close()
            if reader is not None:
                reader.close()
            self.lease.release()

    def _pause(self, reader: EventReader | None, seconds: float) -> None:
        """Back off before the next attempt; meanwhile keep the lag gauge current, so an outage
        shows as growing lag."""
        deadline = time.monotonic() + seconds
        while not self._stopping.is_set():
            if reader is not None:
                try:
                    self._note_lag(reader)
                except StorageError:
                    pass  # the next attempt reopens the reader and reports the error
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self.wake.wait(min(remaining, 1.0))
            self.wake.clear()

    def _confirm(self, cursor: Cursor, events: int) -> None:
        if events:
            self._events.inc(events)
        self.confirmed = {chain: max(seq, self.confirmed.get(chain, 0)) for chain, seq in {**self.confirmed,
                                                                                           **cursor}.items()}
        if self.state != "ok" and events:
            self._recovered()
        self._save(force=False)

    def _save(self, force: bool) -> None:
        if self.confirmed == self.saved:
            return
        now = time.monotonic()
        if force or now - getattr(self, "_saved_at", 0.0) >= self.save_interval:
            self.cursor_store.save(self.confirmed)
            self.saved, self._saved_at = dict(self.confirmed), now

    def _note_lag(self, reader: EventReader) -> None:
        heads = reader.heads()
        self.lag = sum(max(0, head - self.confirmed.get(chain, 0)) for chain, head in heads.items())
        self._lag.set(self.lag)

    def position(self) -> str:
        """The confirmed cursor for people: one chain's seq, or chain:seq pairs."""
        return describe_cursor(self.confirmed)

    def _failed(self, exc: BaseException) -> None:
        self.failures += 1
        self.last_error, self.last_error_at = str(exc), time.time()
        was_ok = not self.state.startswith("failing")
        self.state = f"failing: {exc}"
        if was_ok:
            message = (f"forwarder {self.name}: {exc}; retrying, events wait in the store "
                       f"(cursor at seq {self.position()})")
            log.error("%s", message)
            if self.record is not None:
                self.record("Collector.Forwarder.Failed", message, Level.ERROR)
        else:
            log.debug("forwarder %s still failing: %s", self.name, exc)

    def _recovered(self) -> None:
        if self.state.startswith("failing"):
            message = (f"forwarder {self.name}: delivering to {self.sink.target} again "
                       f"after {self.failures} failed attempts")
            log.warning("%s", message)
            if self.record is not None:
                self.record("Collector.Forwarder.Recovered", message, Level.NOTICE)
        self.failures = 0
        self.state = "ok"


def describe_cursor(cursor: Cursor) -> str:
    if len(cursor) <= 1:
        return str(next(iter(cursor.values()), 0))
    return ", ".join(f"{chain}:{seq}" for chain, seq in sorted(cursor.items()))


def stop_runners(runners: list[ForwarderRunner], timeout: float = 5.0) -> None:
    """Stop several forwarders at once: all are asked first, so the wait is the slowest one's,
    not the sum. One still sending to a dead peer after 2 s has its connection aborted."""
    for runner in runners:
        runner.request_stop()
    deadline = time.monotonic() + min(timeout, 2.0)
    stuck = [r for r in runners if not r.join(max(0.0, deadline - time.monotonic()))]
    for runner in stuck:
        runner.sink.abort()          # stuck sending to a dead peer: make that fail now
    deadline = time.monotonic() + timeout
    for runner in stuck:
        if not runner.join(max(0.0, deadline - time.monotonic())):
            log.error("forwarder %s did not stop within %.0f s", runner.name, timeout)
    for runner in runners:
        runner.state = "stopped"
