"""Event times: integers of microseconds since the Unix epoch (UTC) inside fleetlog, RFC 3339
strings with microseconds and a `Z` at every edge (JSON output, exports, syslog)."""

from __future__ import annotations

import datetime as dt
import functools
import time

UTC = dt.UTC
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)


def now_us() -> int:
    return time.time_ns() // 1000


@functools.lru_cache(maxsize=4096)
def _format_second(seconds: int) -> str:
    # Not strftime("%Y"): glibc writes the year 1 as "1", which is no RFC 3339 (found by fuzzing).
    when = _EPOCH + dt.timedelta(seconds=seconds)
    return f"{when.year:04d}-{when.month:02d}-{when.day:02d}T{when.hour:02d}:{when.minute:02d}:{when.second:02d}"


def format_us(value: int) -> str:
    """1764685845123456 -> "2025-12-02T14:30:45.123456Z". Events come in runs within the same
    second (exports, forwarders), so the formatted second is cached and only µs are added."""
    seconds, micros = divmod(value, 1_000_000)
    return f"{_format_second(seconds)}.{micros:06d}Z"


def datetime_to_us(value: dt.datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def parse_rfc3339_us(text: str) -> int:
    """RFC 3339 / ISO 8601 (`Z` or offset; naive means UTC) -> µs; ValueError when unreadable."""
    text = text.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    return datetime_to_us(dt.datetime.fromisoformat(text))
