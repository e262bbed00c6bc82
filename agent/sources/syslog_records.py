"""Syslog frames -> the Records the batcher takes, with the count of each malformed reason.

`to_record` maps one parsed message; `frames_to_records` is the whole step for a run of frames in
Python, the reference that the C path (syslog_native, _syslog_native.c) is held to."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any, NamedTuple

from fleetlog.agent.parse import Parsed
from fleetlog.agent.sources.base import FLAG_TRUNCATED, Record
from fleetlog.agent.sources.syslog_parse import SyslogMessage, parse_syslog

# Keys of structured-data parameters that become the event's own columns (as JSON keys do).
COLUMN_KEYS = {"request_id": "request_id", "req_id": "request_id", "requestId": "request_id",
               "user": "user", "user_name": "user", "username": "user", "action": "action"}
# The malformed reasons counted while turning frames into records, in the C module's order ("" = none).
PROBLEMS = ("", "empty", "too_long", "no_priority", "bad_priority", "bad_timestamp", "bad_structured_data")


class Received(NamedTuple):
    records: list[Record]
    problems: dict[str, int]     # malformed reason -> frames
    chars: int                   # the messages' length, for the receiver's bound on what it holds


def to_record(message: SyslogMessage, position: int, truncated: bool, read_time_us: int) -> Record:
    """A parsed message as the batcher takes it: PRI's severity -> level, facility, MSGID and
    structured data -> fields (parameters named like request_id/user/action -> those columns),
    the claimed HOSTNAME -> claimed_host."""
    fields: dict[str, Any] = {}
    if message.facility:
        fields["facility"] = message.facility
    if message.msgid:
        fields["msgid"] = message.msgid
    if message.procid:
        fields["procid"] = message.procid
    columns = {"request_id": "", "user": "", "action": ""}
    for sd_id, params in (message.structured or {}).items():
        rest = {}
        for key, value in params.items():
            column = COLUMN_KEYS.get(key)
            if column and not columns[column]:
                columns[column] = value
            else:
                rest[key] = value
        if rest:
            fields[sd_id] = rest
    if "\ufffd" in message.message:
        fields["invalid_utf8"] = True
    parsed = Parsed(message.time_us, message.severity, message.message, columns["request_id"], columns["user"],
                    columns["action"], fields or None, message.hostname)
    return Record(position, parsed, message.app, message.pid, FLAG_TRUNCATED if truncated else 0, read_time_us)


def cut_utf8(data: bytes) -> bytes:
    """A message cut at max_message_bytes without the start of a character the cut split."""
    i, continuation = len(data) - 1, 0
    while i >= 0 and continuation < 3 and data[i] & 0xC0 == 0x80:
        i, continuation = i - 1, continuation + 1
    if i >= 0 and 0xC0 <= data[i] <= 0xF7:
        needed = 2 if data[i] < 0xE0 else 3 if data[i] < 0xF0 else 4
        if continuation + 1 < needed:
            return data[:i]
    return data


def frame_record(data: bytes, truncated: bool, position: int, read_us: int,
                 now: dt.datetime) -> tuple[Record, str, int]:
    """One frame that is not empty (cut already): its Record, malformed reason, message length."""
    message = parse_syslog(data, now)
    return to_record(message, position, truncated, read_us), message.problem, len(message.message)


def frames_to_records(frames: Iterable[tuple[bytes, bool]], position: int, read_us: int,
                      now: dt.datetime) -> Received:
    """Frames (cut at the listener's max_message_bytes, `truncated` when they were) numbered from
    `position`: a frame of only line ends, NULs and spaces is no message ("empty")."""
    records: list[Record] = []
    problems: dict[str, int] = {}
    chars = 0
    for data, truncated in frames:
        if truncated:
            data = cut_utf8(data)
        if not data.strip(b"\r\n\0 "):
            problems["empty"] = problems.get("empty", 0) + 1
            continue
        if truncated:
            problems["too_long"] = problems.get("too_long", 0) + 1
        record, problem, length = frame_record(data, truncated, position + len(records), read_us, now)
        if problem:
            problems[problem] = problems.get(problem, 0) + 1
        records.append(record)
        chars += length
    return Received(records, problems, chars)
