"""RFC 3164 (BSD syslog) messages: `<PRI>Mmm dd hh:mm:ss HOSTNAME TAG[PID]: MSG`.

RFC 3164 has no year, no time zone and no structured data: the timestamp is the event's time
in UTC, TAG is the app (or the forwarder's app_name) cut to the 32 alphanumeric-ish characters
the RFC allows, and the message is sent as UTF-8 as modern receivers expect.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from fleetlog.collector.forward.syslog_common import pri

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_NOT_TAG = re.compile(r"[^A-Za-z0-9_.\-/]")
# rsyslog's RFC 3164 parser takes a HOSTNAME of letters, digits, `.`, `_` and `-` that ends in a
# letter or digit; anything else (`[`, `/`, `@`, a trailing `_` ...) makes it read the host as the
# tag (found by fuzzing against a real rsyslog).
_NOT_HOST = re.compile(r"[^A-Za-z0-9._-]")


def timestamp(rfc3339: str) -> str:
    when = dt.datetime.strptime(rfc3339[:19], "%Y-%m-%dT%H:%M:%S")
    return f"{_MONTHS[when.month - 1]} {when.day:2d} {when:%H:%M:%S}"


def format_rfc3164(event: dict[str, Any], facility: int, app_name: str) -> str:
    tag = _NOT_TAG.sub("_", event.get("app") or app_name)[:32] or "fleetlog"
    if event.get("pid"):
        tag += f"[{event['pid']}]"
    host = _NOT_HOST.sub("_", event.get("host") or "").rstrip("._-") or "unknown"
    return f"<{pri(facility, event['level'])}>{timestamp(event['time'])} {host} {tag}: {event.get('message') or ''}"
