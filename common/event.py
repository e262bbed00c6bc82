"""The event as users see it (contract §3): stored values turned into output values.

Stored rows keep integers (µs times, level 0-7); JSON output, exports and forwarders use
RFC 3339 times and level names. `present` is the one place that conversion happens.
"""

from __future__ import annotations

import json
from typing import Any

from fleetlog.common.levels import LEVEL_NAMES
from fleetlog.common.timefmt import format_us

FIELD_NAMES: tuple[str, ...] = (
    "seq", "id", "time", "received_at", "host", "host_ip", "collector", "namespace", "source",
    "log_type", "app", "pid", "level", "request_id", "user", "action", "message", "fields",
    "tier", "truncated",
)


def present(stored: dict[str, Any]) -> dict[str, Any]:
    """A stored-value event dict -> the contract §3 output dict (same keys, readable values)."""
    out = dict(stored)
    out["time"] = format_us(stored["time"])
    out["received_at"] = format_us(stored["received_at"])
    out["level"] = LEVEL_NAMES[stored["level"]]
    fields = stored.get("fields")
    out["fields"] = json.loads(fields) if fields else {}
    out["truncated"] = bool(stored.get("truncated"))
    return out


def to_json(event: dict[str, Any]) -> str:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))
