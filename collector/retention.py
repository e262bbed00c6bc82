"""Retention (SPEC §4.6): every `purge_interval`, delete the events older than their tier's
retention — per tier, with per-namespace overrides — and record each purge as a security-tier
event. Permanent events are never candidates.

Ingestion must never pause for long, so a purge is many small steps: a reader connection finds
the next chunk of expired events beside the writer (WAL reads do not block it), then one
`writer.call` deletes that chunk in one short transaction. Ingest batches queued meanwhile are
committed between two chunks, so the longest pause is one chunk's delete, not the whole purge.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from collector.config import CollectorConfig
from collector.internal import InternalEvent, append_internal
from collector.store import DeleteResult, EventReader, anchors_digest
from common.levels import Level
from common.timefmt import format_us, now_us

if TYPE_CHECKING:
    from collector.writer import StorageWriter

log = logging.getLogger("fleetlog.collector.retention")

PURGED_TIERS = ("general", "security")   # "permanent" is never purged
PURGE_ACTION = "Collector.Retention.Purge"
PURGE_FAILED_ACTION = "Collector.Retention.Failed"
DEFAULT_CHUNK = 2000


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
    chain: str = ""     # set when the purged events are another collector's chain (a cluster)

    def add(self, result: DeleteResult) -> None:
        if not result.count:
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
        span = f"{format_us(self.oldest_us)} .. {format_us(self.newest_us)}" if self.count else "-"
        # A purge of another collector's chain names it: verify matches it to that chain's gaps.
        of_chain = {"chain": self.chain} if self.chain else {}
        whose = f" of collector {self.chain}" if self.chain else ""
        return InternalEvent(
            PURGE_ACTION, f"retention purge: deleted {self.count} {self.tier}-tier events{whose} with times {span}",
            level=Level.INFO, tier="security",
            fields={"tier": self.tier, "count": self.count,
                    "oldest": format_us(self.oldest_us) if self.oldest_us is not None else None,
                    "newest": format_us(self.newest_us) if self.newest_us is not None else None,
                    "namespaces": self.namespaces, "cutoffs": self.cutoffs,
                    # What tamper-evidence verification needs to accept the gaps: the deleted seq
                    # ranges and a digest of the chain anchors kept for them.
                    "seq_ranges": self.merged_ranges(), "anchors_sha256": anchors_digest(self.anchors),
                    **of_chain})


class RetentionScheduler:
    """Runs `purge_once` every `retention.purge_interval` until stopped."""

    def __init__(self, config: CollectorConfig, open_reader: Callable[[], EventReader], writer: StorageWriter,
                 on_purged: Callable[[str, int], None] | None = None, chunk: int = DEFAULT_CHUNK):
        self.config = config
        self.open_reader = open_reader
        self.writer = writer
        self.on_purged = on_purged
        self.chunk = chunk
        self.next_purge = 0.0        # unix seconds; shown by `fleetlog status`
        self.last_run: list[TierPurge] = []
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
                    await asyncio.wait_for(self._wake.wait(), timeout=delay)
                    continue   # rescheduled: recompute the delay
                except TimeoutError:
                    pass
            try:
                await self.purge_once()
            except Exception as exc:  # noqa: BLE001 — a failed purge is recorded and retried next time
                await self._record_failure(exc)
            self.next_purge = time.time() + self.config.retention.purge_interval

    async def _record_failure(self, exc: Exception) -> None:
        """SPEC §4.5: fleetlog's own operation failures are recorded at level error."""
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
        done: list[TierPurge] = []
        for tier in PURGED_TIERS:
            default, overrides = tier_cutoffs(self.config, tier, now)
            summary = TierPurge(tier, cutoffs={
                "default": format_us(default) if default is not None else "indefinite",
                **{ns: format_us(c) if c is not None else "indefinite" for ns, c in overrides.items()}})
            others: list[TierPurge] = []
            try:
                # Whole expired partitions first (a backend without them returns None); then row
                # deletes for what partitions cannot express: with partitions, only namespaces
                # kept shorter than the tier's default.
                dropped = await self.writer.call(
                    lambda store, t=tier, d=default, o=overrides: store.drop_expired(t, d, o))
                if dropped is not None:
                    summary.add(dropped)
                    for chain, result in sorted(dropped.other_chains.items()):
                        others.append(TierPurge(tier, cutoffs=summary.cutoffs, chain=chain))
                        others[-1].add(result)
                    if self.on_purged is not None and dropped.count + sum(o.count for o in others):
                        self.on_purged(tier, dropped.count + sum(o.count for o in others))
                    overrides = {ns: c for ns, c in overrides.items()
                                 if c is not None and (default is None or c > default)}
                    default = None
                await self._purge_tier(tier, default, overrides, summary)
            finally:
                # Also when the purge is interrupted (shutdown, storage error): whatever was
                # deleted is recorded, so no event ever disappears without its purge event.
                for purge in [summary, *others]:
                    if purge.count:
                        event = purge.event()
                        await self.writer.call(
                            lambda store, event=event: append_internal(store, self.config.node_name, [event]))
                        log.info("retention purge: %d %s-tier events deleted%s", purge.count, tier,
                                 f" of collector {purge.chain}" if purge.chain else "")
                        done.append(purge)
        self.last_run = done
        return done

    async def _purge_tier(self, tier: str, default: int | None, overrides: dict[str, int | None],
                          summary: TierPurge) -> None:
        after = (-(1 << 62), 0)
        while True:
            rows = await asyncio.to_thread(self._reader.expired, tier, default, overrides, after, self.chunk)
            if not rows:
                return
            seqs = [seq for _, seq in rows]
            result: DeleteResult = await self.writer.call(lambda store, seqs=seqs: store.delete_events(seqs))
            summary.add(result)
            if self.on_purged is not None and result.count:
                self.on_purged(tier, result.count)
            after = rows[-1]
            if len(rows) < self.chunk:
                return
