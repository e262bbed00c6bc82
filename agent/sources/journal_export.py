"""A streaming parser of the journal export format, as systemd-journal-upload sends it.

The format (systemd's "Journal Export Format"): an entry is a run of fields ended by an empty
line. A field is either text, `NAME=value\\n`, or binary, `NAME\\n` + the value's length as a
little-endian 64-bit integer + the value + `\\n` (used for values holding newlines or bytes that
are not printable UTF-8). Names are upper-case letters, digits and `_`, at most 64 characters;
the uploader adds `__CURSOR`, `__REALTIME_TIMESTAMP`, `__MONOTONIC_TIMESTAMP` and `_BOOT_ID`.

The bytes come from a peer, cut anywhere by TCP and HTTP chunking, so the parser keeps a state
between `feed` calls and holds at most one bounded entry plus a few bytes of look-ahead; a value
longer than its bound is read through without being kept. Bounds: MESSAGE at most
`max_message_bytes` (cut, the entry marked truncated); every other field of an entry together at
most `max_message_bytes` too, each of them at most that; at most MAX_FIELDS fields an entry.
What breaks a bound or the grammar is counted by reason in `problems` and, where the stream can
still be followed, survived: a field dropped, never an exception.
"""

from __future__ import annotations

import re
import struct
from collections import Counter
from dataclasses import dataclass, field

MAX_NAME = 64                 # journald's own limit on a field name
MAX_FIELDS = 1024             # journald's ENTRY_FIELD_COUNT_MAX
_NAME = re.compile(rb"[A-Z_][A-Z0-9_]*")

# Reasons counted in ExportParser.problems (the receiver's malformed_total{reason}).
BAD_FIELD_NAME = "bad_field_name"        # not a journal field name (field dropped)
FIELD_TOO_LONG = "field_too_long"        # a field other than MESSAGE over the bound (dropped)
ENTRY_TOO_LARGE = "entry_too_large"      # the entry's other fields over the bound (the rest dropped)
TOO_MANY_FIELDS = "too_many_fields"      # over MAX_FIELDS (the rest dropped)
MESSAGE_TOO_LONG = "too_long"            # MESSAGE cut at max_message_bytes (kept, truncated)
BAD_BINARY_END = "bad_binary_end"        # a binary value not followed by a newline: the rest is refused
CUT_ENTRY = "cut_entry"                  # the body ended inside an entry (not stored)
REASONS = (BAD_FIELD_NAME, FIELD_TOO_LONG, ENTRY_TOO_LARGE, TOO_MANY_FIELDS, MESSAGE_TOO_LONG, BAD_BINARY_END,
           CUT_ENTRY)

_LINE, _TEXT, _SIZE, _BINARY, _BINARY_END, _SKIP_LINE, _BROKEN = range(7)


_NAMES: dict[bytes, str] = {}      # valid names seen, as text (the same few dozen in every entry)
_NAMES_MAX = 10_000


def _known_name(name: bytes) -> str:
    """The field name as text; "" when it is not a journal field name."""
    text = _NAMES.get(name)
    if text is None:
        if len(name) > MAX_NAME or not _NAME.fullmatch(name):
            return ""
        text = name.decode("ascii")
        if len(_NAMES) < _NAMES_MAX:
            _NAMES[name] = text
    return text


@dataclass
class ExportEntry:
    """One entry: its fields (the last value of a field given twice) and whether MESSAGE was cut."""

    fields: dict[str, bytes] = field(default_factory=dict)
    truncated: bool = False


class ExportParser:
    def __init__(self, max_message_bytes: int):
        self.max_message_bytes = max_message_bytes
        self.problems: Counter[str] = Counter()
        self.broken = False            # the stream lost its framing (BAD_BINARY_END): feed takes no more
        self._buffer = bytearray()
        self._state = _LINE
        self._entry = ExportEntry()
        self._count = 0                # fields seen in the entry
        self._other_bytes = 0          # kept bytes of fields other than MESSAGE
        self._name = ""                # the field being read; "" = read through, not kept
        self._value = bytearray()
        self._limit = 0                # how much of the value is kept
        self._over = False             # the value went past _limit
        self._remaining = 0            # bytes of a binary value still to come

    def feed(self, data: bytes) -> list[ExportEntry]:
        """The entries completed by `data`."""
        if self.broken:
            return []
        buffer = self._buffer
        buffer += data
        done: list[ExportEntry] = []
        pos = 0
        end = len(buffer)
        while pos < end:
            state = self._state
            if state == _LINE and not self._count:
                # The usual entry: wholly in the buffer and text fields only, taken in one step.
                whole = self._whole_entry(buffer, pos)
                if whole is not None:
                    done.append(whole[0])
                    pos = whole[1]
                    continue
            if state == _LINE:
                # The usual field: a whole text line already in the buffer, taken in one step.
                newline = buffer.find(b"\n", pos)
                if newline > pos:
                    equals = buffer.find(b"=", pos, min(newline, pos + MAX_NAME + 1))
                    if equals >= 0:
                        self._start_field(bytes(buffer[pos:equals]))
                        if self._name:
                            self._value = buffer[equals + 1:newline]
                            if len(self._value) > self._limit:
                                del self._value[max(self._limit, 0):]
                                self._over = True
                            self._end_field()
                        pos = newline + 1
                        continue
                newline = buffer.find(b"\n", pos, pos + MAX_NAME + 1)
                equals = buffer.find(b"=", pos, pos + MAX_NAME + 1 if newline < 0 else newline)
                if equals >= 0:                                    # NAME=value
                    self._start_field(bytes(buffer[pos:equals]))
                    self._state = _TEXT
                    pos = equals + 1
                elif newline == pos:                               # an empty line: the entry ends
                    pos += 1
                    if self._count:
                        done.append(self._entry)
                    self._new_entry()
                elif newline > pos:                                # NAME, then a binary value
                    self._start_field(bytes(buffer[pos:newline]))
                    self._state = _SIZE
                    pos = newline + 1
                elif end - pos > MAX_NAME:                         # no name ends within bounds
                    self.problems[BAD_FIELD_NAME] += 1
                    self._state = _SKIP_LINE
                else:
                    break                                          # the line's start is still coming
            elif state == _TEXT or state == _SKIP_LINE:
                newline = buffer.find(b"\n", pos)
                stop = end if newline < 0 else newline
                if state == _TEXT:
                    self._keep(buffer, pos, stop)
                if newline < 0:
                    pos = end
                    break
                pos = newline + 1
                if state == _TEXT:
                    self._end_field()
                self._state = _LINE
            elif state == _SIZE:
                if end - pos < 8:
                    break
                self._remaining = struct.unpack_from("<Q", buffer, pos)[0]
                pos += 8
                self._state = _BINARY
            elif state == _BINARY:
                take = min(self._remaining, end - pos)
                self._keep(buffer, pos, pos + take)
                pos += take
                self._remaining -= take
                if self._remaining:
                    break
                self._state = _BINARY_END
            elif state == _BINARY_END:
                if buffer[pos] != 0x0A:
                    self.problems[BAD_BINARY_END] += 1
                    self.broken = True
                    self._state = _BROKEN
                    self._buffer = bytearray()
                    return done
                pos += 1
                self._end_field()
                self._state = _LINE
            else:
                break
        del buffer[:pos]
        return done

    def end(self) -> None:
        """The body ended: an entry begun and not ended by an empty line is not stored (counted)."""
        if not self.broken and (self._count or self._state != _LINE or self._buffer):
            self.problems[CUT_ENTRY] += 1
        self._new_entry()
        self._buffer = bytearray()
        self._state = _LINE

    def _whole_entry(self, buffer: bytearray, pos: int) -> tuple[ExportEntry, int] | None:
        """The entry at `pos` and the position after it, when it is wholly in the buffer, has only
        text fields with names seen before and keeps every bound; else None (and nothing changed:
        the field-by-field path takes it). Every line holding a known name and `=` means no binary
        field is there: a binary field's name line has no `=`."""
        end = buffer.find(b"\n\n", pos)
        if end <= pos:
            return None
        lines = bytes(buffer[pos:end]).split(b"\n")
        if len(lines) > MAX_FIELDS:
            return None
        fields: dict[str, bytes] = {}
        names = _NAMES
        for line in lines:
            name, equals, value = line.partition(b"=")
            text = names.get(name)
            if text is None or not equals:
                return None
            fields[text] = value
        if len(fields) != len(lines):
            return None          # a name given twice: the field-by-field path bounds each value in turn
        limit = self.max_message_bytes
        message = fields.get("MESSAGE")
        if message is not None and len(message) > limit:
            return None
        if sum(map(len, fields.values())) - len(message or b"") > limit:
            return None
        return ExportEntry(fields), end + 2

    # -- one field ---------------------------------------------------------------------------

    def _new_entry(self) -> None:
        self._entry = ExportEntry()
        self._count = 0
        self._other_bytes = 0

    def _start_field(self, name: bytes) -> None:
        self._count += 1
        self._value = bytearray()
        self._over = False
        self._name = ""
        text = _known_name(name)
        if not text:
            self.problems[BAD_FIELD_NAME] += 1
        elif self._count > MAX_FIELDS:
            if self._count == MAX_FIELDS + 1:
                self.problems[TOO_MANY_FIELDS] += 1
        else:
            self._name = text
        if self._name == "MESSAGE":
            self._limit = self.max_message_bytes
        else:
            self._limit = min(self.max_message_bytes, self.max_message_bytes - self._other_bytes)

    def _keep(self, buffer: bytearray, start: int, stop: int) -> None:
        if not self._name or self._over:
            return
        room = self._limit - len(self._value)
        if stop - start > room:
            self._value += buffer[start:start + max(room, 0)]
            self._over = True
        else:
            self._value += buffer[start:stop]

    def _end_field(self) -> None:
        name = self._name
        if not name:
            return
        value = bytes(self._value)
        if name == "MESSAGE":
            if self._over:
                self.problems[MESSAGE_TOO_LONG] += 1
                self._entry.truncated = True
            elif self._entry.truncated and "MESSAGE" in self._entry.fields:
                self._entry.truncated = False      # a later MESSAGE replaces the cut one
            self._entry.fields[name] = value
            return
        if self._over:
            whole = self._limit >= self.max_message_bytes
            self.problems[FIELD_TOO_LONG if whole else ENTRY_TOO_LARGE] += 1
            return
        self._other_bytes += len(value) - len(self._entry.fields.get(name, b""))
        self._entry.fields[name] = value
