"""The console's side of the query layer: query-string parameters -> the CLI's filters (one parser,
one set of messages: collector/filters.py), keyset paging tokens, and the data every page and its
JSON twin show. Pages and API call the same functions here, so they cannot drift apart.

Blocking reads run in worker threads through the running collector (collector/running.py), the
same query engine the gRPC service uses; nothing here talks to a database driver.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from fleetlog.collector.filters import FilterSpec
from fleetlog.collector.identity import Caller
from fleetlog.common.errors import UsageError
from fleetlog.common.event import FIELD_NAMES
from fleetlog.common.levels import LEVEL_NAMES
from fleetlog.common.pb.fleetlog.v1 import fleetlog_pb2 as pb
from fleetlog.common.timefmt import format_us, parse_rfc3339_us

if TYPE_CHECKING:
    from fleetlog.collector.running import RunningCollector

# The CLI's filter flags without dashes, `-` written `_` (contract §8): the Filters message's fields.
FILTER_KEYS: tuple[str, ...] = tuple(f.name for f in pb.Filters.DESCRIPTOR.fields)
PAGE_KEYS = ("limit", "order", "_next")
TABLE_COLUMNS = ("time", "level", "request_id", "user", "message", "host")
DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
TRACE_MAX = 10_000
HISTOGRAM_BUCKETS = 60
_NEXT = re.compile(r"^(-?\d{1,20})\.(\d{1,20})(?:\.(.+))?$")
_NEXT_MAX_CHARS = 300
_EARLIEST_US, _END_US = -62_135_596_800_000_000, 253_402_300_800_000_000   # the years 1-9999


def raw_filters(query: Mapping[str, str], also: tuple[str, ...] = ()) -> dict[str, str]:
    """The non-empty filters of a query string; an unknown parameter is an error (a typo such as
    `usr=alice` must not silently return everything)."""
    for key in query:
        if key not in FILTER_KEYS and key not in also:
            raise UsageError(f"unknown query parameter {key!r} (filters: {', '.join(FILTER_KEYS)}"
                             + (f"; also: {', '.join(also)}" if also else "") + ")")
    return {key: query[key].strip() for key in FILTER_KEYS if query.get(key, "").strip()}


def _is_number(text: str) -> bool:
    """ASCII digits only: str.isdigit() also takes "²", which int() refuses (a 500 before)."""
    return text.isascii() and text.isdigit()


def parse_limit(text: str | None) -> int:
    if not text:
        return DEFAULT_LIMIT
    if not _is_number(text) or not 1 <= int(text) <= MAX_LIMIT:
        raise UsageError(f"limit: expected a number from 1 to {MAX_LIMIT}, got {text!r}")
    return int(text)


def parse_order(text: str | None) -> str:
    if text in (None, "", "desc", "asc"):
        return text or "desc"
    raise UsageError(f"order: expected asc or desc, got {text!r}")


def next_token(event: dict[str, Any]) -> str:
    """`time.seq`, and `.chain` where the store has several chains (a cluster's events carry it)."""
    token = f"{parse_rfc3339_us(event['time'])}.{event['seq']}"
    return f"{token}.{event['chain']}" if event.get("chain") else token


def parse_next(text: str) -> tuple[int, int, str]:
    """A token made by next_token: a time in the years 1-9999 and a seq that fits the store's
    64-bit integers (a bigger number reached SQLite and answered 500)."""
    match = _NEXT.match(text)
    if not match or len(text) > _NEXT_MAX_CHARS:
        raise UsageError(f"_next: {text[:_NEXT_MAX_CHARS]!r} is not a paging token from a previous page")
    time_us, seq = int(match.group(1)), int(match.group(2))
    if not (_EARLIEST_US <= time_us < _END_US and 0 <= seq < 2 ** 63):
        raise UsageError(f"_next: {text!r} is not a paging token from a previous page")
    return time_us, seq, match.group(3) or ""


def page_links(query: Mapping[str, str], **changes: str | None) -> str:
    """The query string with some parameters changed (None removes one), for links and forms."""
    from urllib.parse import urlencode
    merged = {k: v for k, v in query.items() if v}
    for key, value in changes.items():
        if value:
            merged[key] = value
        else:
            merged.pop(key, None)
    return urlencode(merged)


async def _events(collector: RunningCollector, spec: FilterSpec, order: str, limit: int) -> list[dict[str, Any]]:
    def first_page() -> list[dict[str, Any]]:
        pages = collector.search(spec, order=order, limit=limit, page_size=limit)
        return next(pages, [])
    return await asyncio.to_thread(first_page)


async def search_events(collector: RunningCollector, caller: Caller, query: Mapping[str, str],
                        also: tuple[str, ...] = ()) -> dict[str, Any]:
    """One page of events (newest first unless order=asc) and the token of the next."""
    raw = raw_filters(query, PAGE_KEYS + also)
    limit = parse_limit(query.get("limit"))
    order = parse_order(query.get("order"))
    spec = collector.filter_spec(raw, caller)
    if query.get("_next"):
        key = parse_next(query["_next"])
        spec = replace(spec, before_key=key) if order == "desc" else replace(spec, after_key=key)
    await collector.record_search(caller, "search", raw, via="web")
    started = time.perf_counter()
    rows = await _events(collector, spec, order, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return {"filters": raw, "order": order, "limit": limit, "events": rows,
            "next": next_token(rows[-1]) if more else None,
            "query_ms": round((time.perf_counter() - started) * 1000, 1)}


async def trace(collector: RunningCollector, caller: Caller, request_id: str) -> dict[str, Any]:
    """Every event of one request, oldest first, with the time since the first step."""
    raw = {"request_id": request_id}
    spec = collector.filter_spec(raw, caller)
    await collector.record_search(caller, "trace", raw, via="web")
    rows = await _events(collector, spec, "asc", TRACE_MAX + 1)
    truncated = len(rows) > TRACE_MAX
    rows = rows[:TRACE_MAX]
    first = parse_rfc3339_us(rows[0]["time"]) if rows else 0
    for row in rows:
        row["since_first_ms"] = round((parse_rfc3339_us(row["time"]) - first) / 1000, 3)
    return {"request_id": request_id, "events": rows, "nodes": sorted({r["host"] for r in rows}),
            "truncated": truncated}


async def histogram(collector: RunningCollector, caller: Caller, query: Mapping[str, str]) -> dict[str, Any]:
    """Counts over time by level for the chart. The range is since/until when given, else the day
    up to the newest matching event (a bounded scan whatever the store's size)."""
    raw = raw_filters(query, PAGE_KEYS + ("buckets",))
    spec = collector.filter_spec(raw, caller)
    buckets = HISTOGRAM_BUCKETS
    if query.get("buckets"):
        if not _is_number(query["buckets"]) or not 1 <= int(query["buckets"]) <= 500:
            raise UsageError(f"buckets: expected a number from 1 to 500, got {query['buckets']!r}")
        buckets = int(query["buckets"])

    def compute() -> dict[str, Any]:
        start, end = spec.since_us, spec.until_us
        if start is None or end is None:
            span = collector.time_span(spec)
            if span is None:
                return {"start": None, "end": None, "width_ms": 0, "buckets": []}
            end = end if end is not None else span[1] + 1
            start = start if start is not None else max(span[0], end - 86_400_000_000)
        width = max(1, -(-(end - start) // buckets))
        counts = [dict.fromkeys(LEVEL_NAMES, 0) for _ in range(buckets)]
        for index, level, count in collector.histogram(spec, start, width, buckets):
            if 0 <= index < buckets:
                counts[index][LEVEL_NAMES[level]] += count
        return {"start": _format(start), "end": _format(start + width * buckets), "width_ms": width / 1000,
                "buckets": [{"start": _format(start + i * width), "counts": c} for i, c in enumerate(counts)]}
    return await asyncio.to_thread(compute)


def _format(time_us: int) -> str:
    """A bucket's edge; the last ones of a range ending in 9999 would be past what a time can say."""
    return format_us(min(time_us, _END_US - 1))


def columns_of(text: str | None) -> list[str]:
    """`columns=a,b` (more columns on demand); the table's default otherwise."""
    if not text:
        return list(TABLE_COLUMNS)
    columns = [c.strip() for c in text.split(",") if c.strip()]
    unknown = [c for c in columns if c not in FIELD_NAMES]
    if unknown or not columns:
        raise UsageError(f"columns: unknown column {(unknown or [''])[0]!r} (columns: {', '.join(FIELD_NAMES)})")
    return columns


async def status(collector: RunningCollector, caller: Caller) -> dict[str, Any]:
    """The collector, its nodes (with clock skew), forwarders, storage and the signed chain; for a
    namespace role its nodes only, the global parts null (`scoped`: true)."""
    reply = await collector.status(caller)
    scoped = reply.scoped
    chain = {} if scoped else await collector.chain_status()
    checkpoint = json.loads(chain["checkpoint_json"]) if chain.get("checkpoint_json") else None
    if checkpoint:
        checkpoint["time_rfc3339"] = format_us(int(checkpoint["time"]))
    return {
        "collector": reply.collector, "version": reply.version, "uptime_seconds": round(reply.uptime_seconds, 1),
        "scoped": scoped, "storage_bytes": None if scoped else reply.storage_bytes,
        "event_count": None if scoped else reply.event_count, "last_seq": None if scoped else reply.last_seq,
        "next_purge": format_us(int(reply.next_purge * 1e6)) if reply.next_purge else None,
        "chain_head": None if scoped else {"seq": chain.get("head_seq", 0), "link": chain.get("head_link_hex", "")},
        "last_checkpoint": checkpoint,
        "nodes": [{"name": n.name, "ip": n.ip, "connected": n.connected,
                   "last_seen": format_us(int(n.last_seen * 1e6)) if n.last_seen else None,
                   "events": n.events, "lag_seconds": round(n.lag_seconds, 3),
                   "clock_skew_seconds": round(n.clock_skew_seconds, 3),
                   "clock_warning": abs(n.clock_skew_seconds) > 1.0} for n in reply.nodes],
        "forwarders": [{"name": f.name, "state": f.state, "lag_events": f.lag_events, "last_error": f.last_error,
                        "last_error_at": format_us(f.last_error_time_us) if f.last_error_time_us else None}
                       for f in reply.forwarders],
        "alerting": None if not reply.alerting_state else {
            "state": reply.alerting_state,
            "alertmanagers": [{"url": m.url, "last_error": m.last_error or None,
                               "last_error_at": format_us(int(m.last_error_time * 1e6)) if m.last_error else None}
                              for m in reply.alertmanagers],
            "alerts": [{"labels": dict(a.labels), "summary": a.summary, "count": a.count,
                        "firing_since": format_us(int(a.firing_since * 1e6))} for a in reply.alerts]},
    }
