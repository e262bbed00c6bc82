"""Event times a peer may set (contract §3, docs/hostile-input.md "Event times").

An event's time comes from the line, so a peer chooses it. Two choices hurt everyone else: a time
far in the future sits on top of every newest-first view and is never purged, and times on many
distinct days make the store create a partition (a file, or a PostgreSQL table) for each, inside
the transaction other agents' batches wait for. So, per batch:

- a time before `now - max_event_age` or after `now + max_future_skew` is replaced by the time the
  batch was received;
- the events of a batch may span the period of the received time plus `max_batch_periods` other
  partition periods (the newest ones); the events of older periods get the received time too.

An adjusted event keeps what it was sent as `fields.original_time` (RFC 3339) and says why in
`fields.time_adjusted` (`too_old`, `too_new`, `too_many_periods`), so a search finds them.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from fleetlog.collector.config import CollectorConfig
from fleetlog.collector.store import IncomingEvents
from fleetlog.common.timefmt import format_us

ORIGINAL_TIME = "original_time"
TIME_ADJUSTED = "time_adjusted"
TOO_OLD, TOO_NEW, TOO_MANY_PERIODS = "too_old", "too_new", "too_many_periods"
# No event is older than the Unix epoch, whatever max_event_age says ("indefinite" included).
EPOCH_US = 0


@dataclass(frozen=True)
class TimePolicy:
    """collector.toml [ingest] max_event_age, max_future_skew, max_batch_periods, and the store's
    partition period ([storage] partition_period; a day for PostgreSQL)."""

    max_event_age: float = 10 * 365 * 86400.0
    max_future_skew: float = 3600.0
    max_batch_periods: int = 32
    period_s: float = 86400.0

    @classmethod
    def of(cls, config: CollectorConfig) -> TimePolicy:
        ingest = config.ingest
        return cls(ingest.max_event_age, ingest.max_future_skew, ingest.max_batch_periods,
                   config.storage.partition_period)

    def bounds(self, received_us: int) -> TimeBounds:
        oldest = EPOCH_US if math.isinf(self.max_event_age) else received_us - int(self.max_event_age * 1e6)
        return TimeBounds(oldest_us=max(EPOCH_US, oldest), newest_us=received_us + int(self.max_future_skew * 1e6),
                          received_us=received_us, period_us=max(1, int(self.period_s * 1e6)),
                          max_periods=self.max_batch_periods)


@dataclass(frozen=True)
class TimeBounds:
    """What one batch received at `received_us` may hold."""

    oldest_us: int
    newest_us: int
    received_us: int
    period_us: int
    max_periods: int

    def reason(self, time_us: int) -> str | None:
        if time_us < self.oldest_us:
            return TOO_OLD
        if time_us > self.newest_us:
            return TOO_NEW
        return None


def bound_times(batch: Sequence[IncomingEvents], bounds: TimeBounds) -> Counter[str]:
    """Adjust the times of `batch` in place (see the module docstring); the adjusted events by reason."""
    adjusted: Counter[str] = Counter()
    for events in batch:
        times = events.time_us
        if times and (min(times) < bounds.oldest_us or max(times) > bounds.newest_us):
            for i, time_us in enumerate(times):
                reason = bounds.reason(time_us)
                if reason:
                    _adjust(events, i, reason, bounds)
                    adjusted[reason] += 1
    allowed = _allowed_periods(batch, bounds)
    if allowed is not None:
        period = bounds.period_us
        for events in batch:
            for i, time_us in enumerate(events.time_us):
                if time_us - time_us % period not in allowed:
                    _adjust(events, i, TOO_MANY_PERIODS, bounds)
                    adjusted[TOO_MANY_PERIODS] += 1
    return adjusted


def _allowed_periods(batch: Sequence[IncomingEvents], bounds: TimeBounds) -> set[int] | None:
    """The period starts the batch may keep, or None when it keeps all of them."""
    period = bounds.period_us
    starts: set[int] = set()
    for events in batch:
        times = events.time_us
        if not times:
            continue
        low, high = min(times), max(times)
        if low - low % period == high - high % period:   # the usual chunk: one period, no per-event work
            starts.add(low - low % period)
        else:
            starts.update(t - t % period for t in times)
    current = bounds.received_us - bounds.received_us % period
    starts.discard(current)
    if len(starts) <= bounds.max_periods:
        return None
    return {current, *sorted(starts, reverse=True)[:bounds.max_periods]}


def _adjust(events: IncomingEvents, i: int, reason: str, bounds: TimeBounds) -> None:
    times, fields = _as_list(events, "time_us"), _as_list(events, "fields_json")
    fields[i] = _flagged(fields[i], times[i], reason)
    times[i] = bounds.received_us


def _as_list(events: IncomingEvents, name: str) -> list:
    values = getattr(events, name)
    if not isinstance(values, list):
        values = list(values)
        setattr(events, name, values)
    return values


def _flagged(fields_json: str, original_us: int, reason: str) -> str:
    """The event's fields with the original time and the reason; what the peer sent under these
    two names is overwritten (ingest checked that fields_json is "" or a JSON object)."""
    fields = json.loads(fields_json) if fields_json else {}
    fields[ORIGINAL_TIME] = format_us(original_us)
    fields[TIME_ADJUSTED] = reason
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
