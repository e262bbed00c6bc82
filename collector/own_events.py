"""The collector's own events, stored through the storage writer like any batch: the audit of
searches and of signed evidence, notes, and what a forwarder thread reports (an outage, a recovery). Denials come through
here too (collector/denials.py decides which ones).

An event that the caller does not wait for is written in the background; its failure is logged,
once for all while the storage is not writable (the writer has said so already).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fleetlog.collector.identity import Caller
from fleetlog.collector.internal import COLLECTOR_NAMESPACE, InternalEvent, append_internal
from fleetlog.collector.query import QueryEngine
from fleetlog.collector.writer import StorageWriter
from fleetlog.common.errors import StorageError
from fleetlog.common.levels import Level

log = logging.getLogger("fleetlog.collector")


class OwnEvents:
    def __init__(self, writer: StorageWriter, query: QueryEngine, chain: str, node_name: Callable[[], str]):
        self._writer = writer
        self._query = query
        self._chain = chain
        self._node_name = node_name   # read at each write: the config as last reloaded
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """From now on, events reported by other threads are stored (through `loop`)."""
        self._loop = loop

    async def append(self, events: list[InternalEvent], namespace: str = COLLECTOR_NAMESPACE) -> int:
        """Store `events` in one transaction; the seq of the last one once committed."""
        node_name = self._node_name()
        result = await self._writer.call(lambda store: append_internal(store, node_name, events, namespace))
        return result.last_seq

    async def record_search(self, caller: Caller, purpose: str, raw_filters: dict[str, str],
                            via: str = "") -> None:
        """The audit event of a search. `via` names a front end other than gRPC (the console: "web")."""
        text = " ".join(f"--{k.replace('_', '-')}={v!r}" for k, v in sorted(raw_filters.items())) or "(no filters)"
        fields: dict[str, Any] = {"purpose": purpose, "filters": raw_filters, "peer_ip": caller.ip}
        if via:
            fields["via"] = via
        await self.append([InternalEvent("audit/search", f"{purpose}: {text}", user=caller.name, fields=fields)])

    async def record_evidence(self, caller: Caller, purpose: str, via: str = "", events: int | None = None,
                              digests_sha256: str = "") -> None:
        """The audit event of a request for signed evidence: "checkpoint" (Query.Evidence) or
        "bundle" (an attestation of `events` lines whose digests.txt has SHA-256 `digests_sha256`)."""
        fields: dict[str, Any] = {"purpose": purpose, "peer_ip": caller.ip}
        if purpose == "bundle":
            fields.update(events=events, digests_sha256=digests_sha256)
            message = f"evidence: bundle of {events} events attested (digests.txt sha256 {digests_sha256})"
        else:
            message = "evidence: a fresh checkpoint of the chain head"
        if via:
            fields["via"] = via
        await self.append([InternalEvent("audit/evidence", message, user=caller.name, fields=fields)])

    async def add_note(self, caller: Caller, text: str, namespace: str) -> tuple[int, str]:
        """Store a note in `namespace` (collector/identity.py note_namespace chose it); its seq
        and event id."""
        seq = await self.append([InternalEvent("Admin.EventLog.Note", text, user=caller.name,
                                               fields={"author": caller.name})], namespace)
        event_id = await asyncio.to_thread(self._query.event_id, self._chain, seq)
        return seq, event_id or ""

    def from_thread(self, action: str, message: str, level: Level) -> None:
        """A forwarder thread reports an outage or recovery; stored in the background."""
        if self._loop is not None:
            event = InternalEvent(action, message, level=level, tier="general")
            self._loop.call_soon_threadsafe(lambda: self.in_background(self.append([event])))

    def events_from_thread(self, events: list[InternalEvent]) -> None:
        """Another thread's events as they are (the alert evaluator's alert/firing and
        alert/resolved, security tier); stored in the background."""
        if self._loop is not None and events:
            self._loop.call_soon_threadsafe(lambda: self.in_background(self.append(list(events))))

    def in_background(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run `coro` (on the loop) without waiting for it; a failure is logged, not raised."""
        task = asyncio.ensure_future(coro)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Future[Any]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        if isinstance(exc, StorageError) and self._writer.fault:
            # An internal event (a forwarder's outage, a denial) that cannot be stored while the
            # storage is not writable: the writer has said so once; not a line per event.
            log.debug("not recorded while storage is not writable: %s", exc)
            return
        log.error("background task failed: %s", exc)
