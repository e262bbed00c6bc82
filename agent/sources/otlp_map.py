"""OTLP logs -> records: decoding an ExportLogsServiceRequest (protobuf or the OTLP JSON encoding)
and mapping each LogRecord onto an event, as the OTLP data model for logs defines the fields.

Never raises on what a sender controls: a body that does not decode is an `OtlpDecodeError`
(its `reason` is the metric's label), and a record that cannot be stored is counted as rejected
with the reason, to be answered as partial success.

Mapping (docs/receivers.md, "OTLP"):
- severity_number -> level by its range (TRACE, DEBUG -> debug; INFO -> info; WARN -> warning;
  ERROR -> error; FATAL -> emergency, as contract §3 maps `fatal`); severity_text (any name the
  level parser knows) when the number is 0 (unspecified); neither: the default level.
- body -> message: a string as is; any other value as compact JSON.
- attributes -> fields; an attribute named like request_id / user / action (the JSON parser's
  keys) fills that column instead.
- trace_id / span_id -> fields.trace_id / fields.span_id (lowercase hex); the trace id becomes the
  request id when no attribute gave one.
- resource `service.name` -> app, `host.name` -> the claimed host, `process.pid` -> pid; the
  other resource attributes -> fields.resource; the scope's name -> fields.scope; event_name ->
  action when no attribute gave one.
- time_unix_nano, else observed_time_unix_nano, else the time received.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from fleetlog.agent.parse import ACTION_KEYS, REQUEST_ID_KEYS, USER_KEYS, Parsed
from fleetlog.agent.sources.base import FLAG_TRUNCATED, Record
from fleetlog.agent.sources.syslog_parse import MAX_TIME_US
from fleetlog.agent.sources.syslog_records import cut_utf8
from fleetlog.common.levels import Level, lookup_level

# severity_number 1-24 in ranges of four (OTLP logs data model, "SeverityNumber").
_RANGES = (Level.DEBUG, Level.DEBUG, Level.INFO, Level.WARNING, Level.ERROR, Level.EMERGENCY)
_COLUMNS = {**{k: "request_id" for k in REQUEST_ID_KEYS}, **{k: "user" for k in USER_KEYS},
            **{k: "action" for k in ACTION_KEYS}}
_RESOURCE_USED = {"service.name", "host.name", "process.pid"}
MAX_JSON_DEPTH = 64      # AnyValue nesting a JSON body may have (protobuf's own parser stops at 100)


class OtlpDecodeError(Exception):
    """A request body that is not an ExportLogsServiceRequest; `reason` labels the metric."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


@dataclass
class Mapped:
    """One request's records (positions 0..n-1, for the source to offset), with what was refused."""

    records: list[Record] = field(default_factory=list)
    size: int = 0                       # bytes of message text, for the batcher's size estimate
    rejected: Counter[str] = field(default_factory=Counter)
    truncated: int = 0
    bad_ids: int = 0

    def error_message(self) -> str:
        """partial_success.error_message: how many were refused and why, "" when none were."""
        return "; ".join(f"{n} log record(s) rejected: {_WHY[reason]}" for reason, n in sorted(self.rejected.items()))


_WHY = {"too_many_records": "more records in one request than max_records_per_request",
        "fields_too_long": "attributes longer than max_message_bytes as JSON",
        "empty": "no body, no attributes and no event name"}


def decode_protobuf(data: bytes) -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    try:
        request.ParseFromString(data)
    except (DecodeError, RecursionError, ValueError) as exc:
        raise OtlpDecodeError("bad_protobuf", f"not an ExportLogsServiceRequest: {exc}") from None
    return request


def decode_json(data: bytes) -> ExportLogsServiceRequest:
    """The OTLP/JSON encoding: proto3 JSON, except that trace and span ids are hex (not base64)."""
    try:
        document = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise OtlpDecodeError("bad_json", f"not JSON: {str(exc)[:200]}") from None
    if not isinstance(document, dict):
        raise OtlpDecodeError("bad_json", "not a JSON object")
    try:
        _ids_to_base64(document)
        return json_format.ParseDict(document, ExportLogsServiceRequest(), ignore_unknown_fields=True,
                                     max_recursion_depth=MAX_JSON_DEPTH)
    except OtlpDecodeError:
        raise
    except (json_format.ParseError, ValueError, TypeError, AttributeError, RecursionError) as exc:
        raise OtlpDecodeError("bad_json", f"not an ExportLogsServiceRequest: {str(exc)[:200]}") from None


def _ids_to_base64(document: dict) -> None:
    """traceId/spanId of each log record, hex as OTLP/JSON writes them, as proto3 JSON reads bytes."""
    for resource_logs in _items(document, "resourceLogs", "resource_logs"):
        for scope_logs in _items(resource_logs, "scopeLogs", "scope_logs"):
            for record in _items(scope_logs, "logRecords", "log_records"):
                for key in ("traceId", "trace_id", "spanId", "span_id"):
                    value = record.get(key)
                    if isinstance(value, str) and value:
                        try:
                            record[key] = base64.b64encode(bytes.fromhex(value)).decode()
                        except ValueError:
                            raise OtlpDecodeError("bad_json", f"{key} is not hex: {value[:40]!r}") from None


def _items(parent: Any, *keys: str) -> list[dict]:
    if not isinstance(parent, dict):
        return []
    for key in keys:
        value = parent.get(key)
        if isinstance(value, list):
            return [item for item in value if isinstance(item, dict)]
    return []


def plain(value: Any) -> Any:
    """An AnyValue as a JSON value: kvlists as objects, arrays as lists, bytes as base64; an unset
    value, and doubles JSON cannot hold (NaN, infinities), as null or their name."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        number = value.double_value
        return number if math.isfinite(number) else str(number)
    if kind == "array_value":
        return [plain(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: plain(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return None


def level_of(severity_number: int, severity_text: str) -> int | None:
    if 1 <= severity_number <= 24:
        return int(_RANGES[(severity_number - 1) // 4])
    if severity_text:
        level = lookup_level(severity_text.strip())
        return int(level) if level is not None else None
    return None


def _hex_id(raw: bytes, size: int) -> tuple[str, bool]:
    """(hex, well formed): an id of the wrong length is not stored; all zeros is "no id"."""
    if not raw:
        return "", True
    if len(raw) != size:
        return "", False
    return ("" if not raw.strip(b"\0") else binascii.hexlify(raw).decode()), True


def _time_us(record: Any) -> int | None:
    nanos = record.time_unix_nano or record.observed_time_unix_nano
    if not nanos:
        return None
    return min(nanos // 1000, MAX_TIME_US)


_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode


def map_request(request: ExportLogsServiceRequest, max_message_bytes: int, max_records: int,
                read_time_us: int) -> Mapped:
    mapped = Mapped()
    records = mapped.records
    seen = 0
    for resource_logs in request.resource_logs:
        resource: dict[str, Any] = {kv.key: plain(kv.value) for kv in resource_logs.resource.attributes}
        app = _text(resource.get("service.name"))
        claimed = _text(resource.get("host.name"))
        pid = resource.get("process.pid")
        pid = pid if isinstance(pid, int) and not isinstance(pid, bool) and 0 <= pid < 2**31 else 0
        rest = {k: v for k, v in resource.items() if k not in _RESOURCE_USED}
        resource_bytes = resource_logs.resource.ByteSize() * 6
        for scope_logs in resource_logs.scope_logs:
            scope = scope_logs.scope.name
            around = resource_bytes + len(scope) * 6     # bytes the resource and scope add to fields
            for log_record in scope_logs.log_records:
                seen += 1
                if seen > max_records:
                    mapped.rejected["too_many_records"] += 1
                    continue
                record = _record(mapped, log_record, len(records), app, claimed, pid, rest, scope, around,
                                 max_message_bytes, read_time_us)
                if record is not None:
                    records.append(record)
    return mapped


def _text(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else _dumps(value)


def _record(mapped: Mapped, log_record: Any, position: int, app: str, claimed: str, pid: int,
            resource: dict[str, Any], scope: str, around: int, max_bytes: int, read_time_us: int) -> Record | None:
    has_body = log_record.HasField("body") and log_record.body.WhichOneof("value") is not None
    if not has_body and not log_record.attributes and not log_record.event_name:
        mapped.rejected["empty"] += 1
        return None
    message = _text(plain(log_record.body)) if has_body else ""
    flags = 0
    encoded = message.encode("utf-8", "surrogatepass")
    if len(encoded) > max_bytes:
        message = cut_utf8(encoded[:max_bytes]).decode("utf-8", "replace")
        flags = FLAG_TRUNCATED
        mapped.truncated += 1
    columns = {"request_id": "", "user": "", "action": ""}
    fields: dict[str, Any] = {}
    for kv in log_record.attributes:
        value = plain(kv.value)
        column = _COLUMNS.get(kv.key)
        if column and not columns[column] and isinstance(value, (str, int)) and not isinstance(value, bool):
            columns[column] = str(value)
        else:
            fields[kv.key] = value
    trace_id, trace_ok = _hex_id(log_record.trace_id, 16)
    span_id, span_ok = _hex_id(log_record.span_id, 8)
    if not (trace_ok and span_ok):
        mapped.bad_ids += 1
    if trace_id:
        fields["trace_id"] = trace_id
        columns["request_id"] = columns["request_id"] or trace_id
    if span_id:
        fields["span_id"] = span_id
    if log_record.event_name:
        columns["action"] = columns["action"] or log_record.event_name
    if scope:
        fields["scope"] = scope
    if resource:
        fields["resource"] = resource
    # The fields' JSON is at most about 6 bytes per byte of the record (\u escapes) plus the
    # resource and scope; only a record near the bound is encoded to measure it.
    if (log_record.ByteSize() * 6 + around + 256 > max_bytes
            and len(_dumps(fields).encode("utf-8", "surrogatepass")) > max_bytes):
        mapped.rejected["fields_too_long"] += 1
        return None
    level = level_of(log_record.severity_number, log_record.severity_text)
    parsed = Parsed(_time_us(log_record), level, message, columns["request_id"], columns["user"],
                    columns["action"], fields or None, claimed)
    mapped.size += len(encoded)
    return Record(position, parsed, app, pid, flags, read_time_us)
