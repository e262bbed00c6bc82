"""Retention (contract §4.6): every `purge_interval`, delete the events older than their tier's
retention — per tier, with per-namespace overrides — and record each purge as a security-tier
event. Permanent events are never candidates.

Deleting must cost next to nothing whatever the volume (issue 21), and ingestion must never pause
for long (docs/storage-model.md §3). Per tier, a purge:
1. asks the store which partitions hold only expired events, reads each one's seq ranges and
   anchors beside the writer (a reader), and writes the anchors in small writer steps;
2. deletes row by row, in small chunks, only what expires inside partitions that stay (a namespace
   with a shorter retention; a migrated single-file store), each chunk journaled with the anchors;
3. in one writer transaction, unlists the expired partitions and stores the tier's purge event
   (which also covers step 2); their files are deleted after. Dropping costs milliseconds.
A purge that a crash interrupted in step 2 is recorded at the next start (`recover_pending`).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fleetlog.collector.config import CollectorConfig
from fleetlog.collector.internal import InternalEvent, append_internal, internal_batch
from fleetlog.collector.store import DeleteResult, EventReader, EventWriter, anchors_digest
from fleetlog.common.levels import Level
from fleetlog.common.timefmt import format_us, now_us

if TYPE_CHECKING:
    from fleetlog.collector.writer import StorageWriter

log = logging.getLogger("fleetlog.collector.retention")

PURGED_TIERS = ("general", "security")   # "permanent" is never purged
PURGE_ACTION = "Collector.Retention.Purge"
PURGE_FAILED_ACTION = "Collector.Retention.Failed"
DEFAULT_CHUNK = 2000
ANCHOR_CHUNK = 20_000          # anchors written per writer step ahead of a drop


def _cutoff(now: int, retention_seconds: float) -> int | None:
    """The time before which events expire; None for `indefinite`."""
    if math.isinf(retention_seconds):
        return None
    return now - int(retention_seconds * 1_000_000)


def tier_cutoffs(config: CollectorConfig, tier: str, now: int) -> tuple[int | None, dict[str, int | None]]:
    """(default cutoff, {namespace: cutoff}) for one tier; overrides only where they differ."""
    default = _cutoff(now, getattr(config.retention, tier))
    overrides: dict[str, int | None] = {}
    for namespace, override in config.retention.namespaces.items():
        value = getattr(override, tier)
        if value is not None:
            overrides[namespace] = _cutoff(now, value)
    return default, overrides


@dataclass
class TierPurge:
    """What one purge run deleted from one tier: the content of its security event."""

    tier: str
    count: int = 0
    oldest_us: int | None = None
    newest_us: int | None = None
    namespaces: dict[str, int] = field(default_factory=dict)
    ranges: list[list[int]] = field(default_factory=list)
    anchors: list[tuple[int, bytes]] = field(default_factory=list)
    cutoffs: dict[str, str] = field(default_factory=dict)
    partitions: list[str] = field(default_factory=list)   # dropped whole
    recovered: bool = False     # recorded at start, after a crash interrupted the purge
    chain: str = ""     # set when the purged events are another collector's chain (a cluster)

    def state(self, extra: DeleteResult | None = None) -> str:
        """The journal of a purge in progress (anchors are in the store; their digest is taken
        again when the journal is recovered)."""
        copy = TierPurge(self.tier, self.count, self.oldest_us, self.newest_us, dict(self.namespaces),
                         [list(r) for r in self.ranges], [], dict(self.cutoffs), list(self.partitions))
        if extra is not None:
            copy.add(extra)
        return json.dumps({"tier": copy.tier, "count": copy.count, "oldest": copy.oldest_us, "newest": copy.newest_us,
                           "namespaces": copy.namespaces, "ranges": copy.merged_ranges(), "cutoffs": copy.cutoffs,
                           "partitions": copy.partitions})

    @classmethod
    def from_state(cls, text: str) -> TierPurge:
        data = json.loads(text)
        return cls(data["tier"], int(data["count"]), data["oldest"], data["newest"], dict(data["namespaces"]),
                   [list(r) for r in data["ranges"]], [], dict(data["cutoffs"]), list(data["partitions"]))

    def add(self, result: DeleteResult) -> None:
        if not result.count or result.oldest_us is None or result.newest_us is None:
            return
        self.count += result.count
        self.oldest_us = result.oldest_us if self.oldest_us is None else min(self.oldest_us, result.oldest_us)
        self.newest_us = result.newest_us if self.newest_us is None else max(self.newest_us, result.newest_us)
        for namespace, n in result.namespaces.items():
            self.namespaces[namespace] = self.namespaces.get(namespace, 0) + n
        self.anchors.extend(result.anchors)
        for low, high in result.ranges:
            self.ranges.append([low, high])

    def merged_ranges(self) -> list[list[int]]:
        merged: list[list[int]] = []
        for low, high in sorted(self.ranges):
            if merged and low <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], high)
            else:
                merged.append([low, high])
        return merged

    def event(self) -> InternalEvent:
        span = (f"{format_us(self.oldest_us)} .. {format_us(self.newest_us)}"
                if self.count and self.oldest_us is not None and self.newest_us is not None else "-")
        fields: dict[str, Any] = {}
        if self.partitions:
            fields["partitions"] = self.partitions
        if self.recovered:
            fields["recovered"] = True
        if self.chain:   # a purge of another collector's chain names it: verify matches it to that chain's gaps
            fields["chain"] = self.chain
        whose = f" of collector {self.chain}" if self.chain else ""
        return InternalEvent(
            PURGE_ACTION, f"retention purge: deleted {self.count} {self.tier}-tier events{whose} with times {span}",
            level=Level.INFO, tier="security",
            fields={**fields, "tier": self.tier, "count": self.count,
                    "oldest": format_us(self.oldest_us) if self.oldest_us is not None else None,
                    "newest": format_us(self.newest_us) if self.newest_us is not None else None,
                    "namespaces": self.namespaces, "cutoffs": self.cutoffs,
                    # What tamper-evidence verification needs to accept the gaps: the deleted seq
                    # ranges and a digest of the chain anchors kept for them.
                    "seq_ranges": self.merged_ranges(), "anchors_sha256": anchors_digest(self.anchors)})


class RetentionScheduler:
    """Runs `purge_once` every `retention.purge_interval` until stopped."""

    def __init__(self, config: CollectorConfig, open_reader: Callable[[], EventReader], writer: StorageWriter,
                 on_purged: Callable[[str, int], None] | None = None, chunk: int = DEFAULT_CHUNK,
                 on_run: Callable[[bool], None] | None = None):
        self.config = config
        self.open_reader = open_reader
        self.writer = writer
        self.on_purged = on_purged
        self.on_run = on_run         # after each scheduled run: True when it succeeded
        self.chunk = chunk
        self.next_purge = 0.0        # unix seconds; shown by `fleetlog status`
        self._task: asyncio.Task[Any] | None = None
        self._reader: EventReader | None = None
        self._wake = asyncio.Event()

    def start(self) -> None:
        self.next_purge = time.time() + self.config.retention.purge_interval
        self._task = asyncio.create_task(self._loop(), name="retention")

    def reconfigure(self, config: CollectorConfig) -> None:
        """SIGHUP: new retention applies from the next run; a new interval reschedules it."""
        interval_changed = config.retention.purge_interval != self.config.retention.purge_interval
        self.config = config
        if interval_changed and self._task is not None:
            self.next_purge = time.time() + config.retention.purge_interval
            self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    async def _loop(self) -> None:
        while True:
            delay = self.next_purge - time.time()
            if delay > 0:
                self._wake.clear()
                try:
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
                    continue   # rescheduled: recompute the delay
                except TimeoutError:
                    pass
            try:
                await self.purge_once()
            except Exception as exc:  # noqa: BLE001 — a failed purge is recorded and retried next time
                if self.on_run is not None:
                    self.on_run(False)
                await self._record_failure(exc)
            else:
                if self.on_run is not None:
                    self.on_run(True)
            self.next_purge = time.time() + self.config.retention.purge_interval

    async def _record_failure(self, exc: Exception) -> None:
        """contract §4.5: fleetlog's own operation failures are recorded at level error."""
        message = f"retention purge failed, retrying in {self.config.retention.purge_interval:g}s: {exc}"
        log.error("%s", message)
        failure = InternalEvent(PURGE_FAILED_ACTION, message, level=Level.ERROR, tier="security",
                                fields={"error": str(exc)})
        try:
            await self.writer.call(lambda store: append_internal(store, self.config.node_name, [failure]))
        except Exception as again:  # noqa: BLE001 — the store itself is failing: the log line stays
            log.error("cannot record the purge failure in the store: %s", again)

    async def purge_once(self, now: int | None = None) -> list[TierPurge]:
        """Delete every expired event of every tier; record one security event per tier that lost
        events. Returns what was deleted, per tier."""
        now = now if now is not None else now_us()
        if self._reader is None:
            self._reader = self.open_reader()
        reader = self._reader
        done: list[TierPurge] = []
        for tier in PURGED_TIERS:
            default, overrides = tier_cutoffs(self.config, tier, now)
            summary = TierPurge(tier, cutoffs={
                "default": format_us(default) if default is not None else "indefinite",
                **{ns: format_us(c) if c is not None else "indefinite" for ns, c in overrides.items()}})
            scanned: dict[str, tuple[int, DeleteResult]] = {}   # partition -> (max_seq when read, what it holds)
            try:
                await self._scan_expired_partitions(reader, tier, default, overrides, scanned)
                await self._delete_rows(reader, tier, default, overrides, summary)
            finally:
                # Also when the purge is interrupted (shutdown, storage error): whatever was
                # deleted is recorded, so no event ever disappears without its purge event; the
                # partitions go in the same transaction as the record.
                if scanned or summary.count:
                    dropped = await self.writer.call(
                        functools.partial(self._drop_and_record, tier=tier, summary=summary, scanned=scanned))
                    if dropped and self.on_purged is not None:
                        self.on_purged(tier, dropped)
                if summary.count:
                    log.info("retention purge: %d %s-tier events deleted (%d partitions dropped whole)",
                             summary.count, tier, len(summary.partitions))
                    done.append(summary)
        return done

    def _drop_and_record(self, store: EventWriter, tier: str, summary: TierPurge,
                         scanned: dict[str, tuple[int, DeleteResult]]) -> int:
        """Writer thread: unlist the scanned partitions and store the tier's purge event, in one
        transaction. Returns the events dropped with whole partitions."""
        expected = {name: max_seq for name, (max_seq, _) in scanned.items()}
        dropped_events = 0

        def record(dropped: list[Any]) -> list[Any]:
            nonlocal dropped_events
            others: dict[str, TierPurge] = {}   # a cluster's partition holds every collector's chain
            for part in dropped:
                scan = scanned[part.name][1]
                summary.add(scan)
                summary.partitions.append(part.name)
                dropped_events += scan.count
                for chain, part_of_chain in sorted(scan.other_chains.items()):
                    other = others.setdefault(chain, TierPurge(tier, cutoffs=summary.cutoffs, chain=chain))
                    other.add(part_of_chain)
                    other.partitions.append(part.name)
                    dropped_events += part_of_chain.count
            events = [purge.event() for purge in (summary, *others.values()) if purge.count]
            return [internal_batch(store, self.config.node_name, events)] if events else []

        store.drop_partitions(tier, expected, record)
        return dropped_events

    async def _scan_expired_partitions(self, reader: EventReader, tier: str, default: int | None,
                                       overrides: dict[str, int | None],
                                       scanned: dict[str, tuple[int, DeleteResult]]) -> None:
        """Step 1: what each wholly expired partition holds, read beside the writer, and its
        anchors in the store in a few writer steps (each writer step waits for the ingest queued
        before it, so there are few of them)."""
        parts = await asyncio.to_thread(reader.droppable, tier, default, overrides)
        found: dict[str, tuple[int, DeleteResult]] = {}
        for part in parts:
            found[part.name] = (part.max_seq, await asyncio.to_thread(reader.scan_partition, part))
        anchors = [anchor for _, scan in found.values() for anchor in scan.anchors]
        for start in range(0, len(anchors), ANCHOR_CHUNK):
            chunk = anchors[start:start + ANCHOR_CHUNK]
            await self.writer.call(
                lambda store, chunk=chunk: store.add_anchors(chunk))  # type: ignore[misc]  # mypy: lambda defaults
        scanned.update(found)   # dropped only if they have not grown since they were read

    async def _delete_rows(self, reader: EventReader, tier: str, default: int | None,
                           overrides: dict[str, int | None], summary: TierPurge) -> None:
        """Step 2: what expires inside partitions that stay, in small journaled chunks."""
        after = (-(1 << 62), 0)
        while True:
            rows = await asyncio.to_thread(reader.expired, tier, default, overrides, after, self.chunk)
            if not rows:
                return
            seqs = [seq for _, seq in rows]
            result: DeleteResult = await self.writer.call(
                lambda store, seqs=seqs: store.delete_events(  # type: ignore[misc]  # mypy: lambda defaults
                    seqs, journal=lambda r: (tier, summary.state(r))))
            summary.add(result)
            if self.on_purged is not None and result.count:
                self.on_purged(tier, result.count)
            after = rows[-1]
            if len(rows) < self.chunk:
                return


def recover_pending(store: EventWriter, node_name: str) -> int:
    """Writer thread, at start: record the purge event of every row purge a crash interrupted
    (its journal lists what was deleted; the anchors are in the store). Returns how many."""
    pending = store.pending_purges()
    for tier, state in pending:
        summary = TierPurge.from_state(state)
        summary.recovered = True
        summary.anchors = store.anchors_within([(low, high) for low, high in summary.merged_ranges()])
        log.warning("recording the %s-tier retention purge a stop interrupted (%d events deleted)", tier, summary.count)
        store.drop_partitions(tier, {}, lambda dropped, s=summary: [  # type: ignore[misc]  # mypy: lambda defaults
            internal_batch(store, node_name, [s.event()])])
    return len(pending)
