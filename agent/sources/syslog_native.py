"""Frames and records of a syslog listener, in C when _syslog_native is built, else in Python.

`StreamReader` is one TCP/TLS connection's framing plus parsing (FrameSplitter's rules); `datagram`
is one UDP message. Both answer a `Received`. The C module parses ASCII frames itself and hands any
other frame to syslog_records.frame_record, so both paths give the same records and counts
(tests/unit/test_syslog_native.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fleetlog.agent.parse import Parsed
from fleetlog.agent.sources.base import FLAG_TRUNCATED, Record
from fleetlog.agent.sources.syslog_framing import Frame, FrameError, FrameSplitter
from fleetlog.agent.sources.syslog_parse import FACILITIES
from fleetlog.agent.sources.syslog_records import (
    COLUMN_KEYS,
    PROBLEMS,
    Received,
    frame_record,
    frames_to_records,
)

MODE_LF, MODE_OCTET, MODE_DATAGRAM = 0, 1, 2


def _load_native() -> Any:
    try:
        from fleetlog.agent.sources import _syslog_native  # type: ignore[attr-defined]
    except ImportError:
        return None
    _syslog_native.init(Record, Parsed, FACILITIES, COLUMN_KEYS)
    return _syslog_native


native = _load_native()


def _problems(counts: tuple[int, ...]) -> dict[str, int]:
    return {PROBLEMS[i]: n for i, n in enumerate(counts) if i and n}


def _fallback(read_us: int, now: dt.datetime) -> Any:
    """What the C module calls for a frame with a byte over 0x7f."""
    index = {name: i for i, name in enumerate(PROBLEMS)}

    def parse(data: bytes, truncated: int, position: int) -> tuple[Record, int, int]:
        record, problem, chars = frame_record(data, bool(truncated), position, read_us, now)
        return record, index[problem], chars
    return parse


def _native_records(buffer: bytes | bytearray, mode: int, max_bytes: int, skip: int, skip_line: bool, position: int,
                    read_us: int, now: dt.datetime) -> tuple[Received, int, int, bool, bytes | None]:
    records, consumed, skip, skip_line, bad, counts, chars = native.records(
        buffer, mode, max_bytes, skip, skip_line, position, read_us, now.year, now.timestamp(), FLAG_TRUNCATED,
        _fallback(read_us, now))
    return Received(records, _problems(counts), chars), consumed, skip, skip_line, bad


def datagram(data: bytes, max_bytes: int, position: int, read_us: int, now: dt.datetime,
             use_native: bool = True) -> Received:
    """One UDP datagram, cut at max_bytes."""
    if native is not None and use_native:
        return _native_records(data, MODE_DATAGRAM, max_bytes, 0, False, position, read_us, now)[0]
    return frames_to_records([(data[:max_bytes], len(data) > max_bytes)], position, read_us, now)


class StreamReader(FrameSplitter):
    """FrameSplitter that answers Records: in C over the whole read buffer when it is built."""

    def __init__(self, max_bytes: int, use_native: bool = True):
        super().__init__(max_bytes)
        self.use_native = use_native and native is not None

    def feed_records(self, data: bytes, position: int, read_us: int, now: dt.datetime) -> Received:
        if not self.use_native:
            return frames_to_records(self.feed(data), position, read_us, now)
        if not data or self.broken:
            return Received([], {}, 0)
        if not self.framing:
            self.framing = "octet" if data[:1] in b"123456789" else "lf"
        if self._buffer:
            self._buffer += data
            buffer: bytes | bytearray = self._buffer
        else:
            buffer = data          # the usual read: no copy into the connection's buffer
        received, consumed, self._skip, self._skip_line, bad = _native_records(
            buffer, MODE_OCTET if self.framing == "octet" else MODE_LF, self.max_bytes, self._skip,
            self._skip_line, position, read_us, now)
        if bad is not None:
            self.broken = FrameError("bad_octet_count", f"expected an octet count, got {bad[:16]!r}")
            self._buffer = bytearray()
        elif buffer is self._buffer:
            del self._buffer[:consumed]
        else:
            self._buffer = bytearray(data[consumed:])
        return received

    def end_records(self, position: int, read_us: int, now: dt.datetime) -> Received:
        """The peer closed: the LF-framed last line without its LF, as FrameSplitter.end."""
        last: Frame | None = self.end()
        return frames_to_records([last] if last else [], position, read_us, now)
