"""RFC 5424 syslog messages from fleetlog events.

    <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [fleetlog@32473 ...][fields@32473 ...] BOM MSG

TIMESTAMP is the event's time (`-` from the year 2100 on, which rsyslog refuses; the time is then
the `time` param of the fleetlog SD element). HOSTNAME is the event's origin host, APP-NAME its app (or the forwarder's app_name), PROCID its
pid, MSGID its action (or log_type). Header fields are PRINTUSASCII with a length limit (§6.2);
anything else is replaced by `_` and cut, and an empty field is the NILVALUE `-`. Structured data
param values escape `"`, `\\` and `]` (§6.3.3). The message is MSG-UTF8 (BOM first) when it is not
plain ASCII, MSG-ANY otherwise (§6.4), so receivers that honour the BOM decode it as UTF-8.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

from fleetlog.collector.forward.syslog_common import pri

# 32473 is the IANA enterprise number reserved for documentation (RFC 5612); fleetlog has none.
SD_ID = "fleetlog@32473"
FIELDS_SD_ID = "fields@32473"
SD_PARAMS = ("request_id", "user", "namespace", "log_type", "tier", "id", "seq")
BOM = "\ufeff"

_NOT_PRINTUSASCII = re.compile(r"[^\x21-\x7e]")
_NOT_SD_NAME = re.compile(r'[^\x21-\x7e]|[= \]"]')


@functools.lru_cache(maxsize=4096)
def header_field(value: Any, limit: int) -> str:
    """A header field: PRINTUSASCII only, at most `limit` characters, `-` when empty. Cached:
    hosts, apps and actions repeat from event to event."""
    text = _NOT_PRINTUSASCII.sub("_", "" if value is None else str(value))[:limit]
    return text or "-"


def sd_name(name: str) -> str:
    return _NOT_SD_NAME.sub("_", name)[:32] or "_"


def sd_value(value: Any) -> str:
    if not isinstance(value, str):
        value = str(value) if type(value) is int else json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if '"' in value or "\\" in value or "]" in value:
        value = value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")
    return value


# rsyslog refuses an RFC 3339 TIMESTAMP from the year 2100 on and then parses none of the header
# (found by fuzzing against a real rsyslog): such a time is sent as `time` in the structured
# data, with the NILVALUE in the header.
LAST_HEADER_YEAR = "2099"


def header_timestamp(time: str) -> str:
    return time if time[:4] <= LAST_HEADER_YEAR else "-"


def structured_data(event: dict[str, Any]) -> str:
    parts = ["[", SD_ID]
    if header_timestamp(event["time"]) == "-":
        parts.append(f' time="{sd_value(event["time"])}"')
    for name in SD_PARAMS:
        value = event.get(name)
        if value is not None and value != "":
            parts.append(f' {name}="{sd_value(value)}"')
    parts.append("]")
    fields = event.get("fields")
    if fields:
        parts += ["[", FIELDS_SD_ID]
        seen: set[str] = set()
        for key, value in fields.items():
            name = sd_name(key)
            if name not in seen:    # two keys sanitised to the same name: keep the first
                seen.add(name)
                parts.append(f' {name}="{sd_value(value)}"')
        parts.append("]")
    return "".join(parts)


def format_rfc5424(event: dict[str, Any], facility: int, app_name: str) -> str:
    """One message (without framing) for a presented event (common.event.present)."""
    message = event.get("message") or ""
    if not message.isascii():
        message = BOM + message
    return " ".join((
        f"<{pri(facility, event['level'])}>1",
        header_timestamp(event["time"]),
        header_field(event.get("host"), 255),
        header_field(event.get("app") or app_name, 48),
        header_field(event.get("pid"), 128),
        header_field(event.get("action") or event.get("log_type"), 32),
        structured_data(event),
        message,
    ))
