"""Line parsers (contract §2 `parser`, §3 extraction): auto | json | regex | plain.

A parser turns one line of text into a `Parsed` record. `auto` recognises a JSON object, or a
leading timestamp and level followed by text in which key=value pairs are copied into the
extracted fields (never cut out of the message). This runs once per line, so the common shapes
take a fast path: one regex match, a cached seconds lookup for the timestamp, no JSON encoding
unless there are leftover fields.
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
import math
import re
from collections.abc import Callable
from typing import Any, NamedTuple

from fleetlog.common.levels import Level, lookup_level

REQUEST_ID_KEYS = ("request_id", "req", "req_id", "rid", "requestId")
USER_KEYS = ("user", "user_name", "username", "user_id")
ACTION_KEYS = ("action", "event")
LEVEL_KEYS = ("level", "severity", "lvl")
TIME_KEYS = ("time", "timestamp", "ts", "@timestamp")
MESSAGE_KEYS = ("msg", "message")
HOST_KEYS = ("host", "hostname")

_TARGET: dict[str, str] = {}
for _keys, _target in ((REQUEST_ID_KEYS, "request_id"), (USER_KEYS, "user"), (ACTION_KEYS, "action"),
                       (LEVEL_KEYS, "level"), (TIME_KEYS, "time"), (MESSAGE_KEYS, "message"),
                       (HOST_KEYS, "host")):
    for _key in _keys:
        _TARGET[_key] = _target


class Parsed(NamedTuple):
    time_us: int | None
    level: int | None
    message: str
    request_id: str
    user: str
    action: str
    fields: dict[str, Any] | None
    claimed_host: str = ""


# --- time ---------------------------------------------------------------------------------------

_ISO = re.compile(r"(\d{4}[-/]\d{2}[-/]\d{2})[T ](\d{2}:\d{2}:\d{2})(?:[.,](\d{1,9}))?(Z|z|[+-]\d{2}:?\d{2})?")
# A leading epoch: 10 digits of seconds or 13 of milliseconds, an optional fraction.
_EPOCH = re.compile(r"(\d{10}|\d{13})(?:\.(\d{1,9}))?(?=\s|$)")
_SYSLOG = re.compile(r"([A-Z][a-z]{2}) {1,2}(\d{1,2}) (\d{2}:\d{2}:\d{2})")
_MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep",
                                       "Oct", "Nov", "Dec"), 1)}
_seconds_cache: dict[tuple[str, str, str], int] = {}


def _tz_offset(tz: str | None) -> int:
    if not tz or tz in ("Z", "z"):
        return 0
    sign = -1 if tz[0] == "-" else 1
    digits = tz[1:].replace(":", "")
    return sign * (int(digits[:2]) * 3600 + int(digits[2:4]) * 60)


def _iso_seconds(date: str, clock: str, tz: str | None) -> int:
    key = (date, clock, tz or "")
    seconds = _seconds_cache.get(key)
    if seconds is None:
        naive = dt.datetime.fromisoformat(f"{date.replace('/', '-')}T{clock}")
        seconds = calendar.timegm(naive.timetuple()) - _tz_offset(tz)
        if len(_seconds_cache) > 100_000:
            _seconds_cache.clear()
        _seconds_cache[key] = seconds
    return seconds


def iso_match_to_us(match: re.Match[str]) -> int:
    date, clock, fraction, tz = match.groups()
    micros = int((fraction + "00000")[:6]) if fraction else 0
    return _iso_seconds(date, clock, tz) * 1_000_000 + micros


def _syslog_to_us(match: re.Match[str], now: dt.datetime | None = None) -> int:
    month, day, clock = match.groups()
    now = now or dt.datetime.now(dt.UTC)
    # Syslog stamps have no year: the current one, unless that puts the line more than a day in
    # the future (a December line read in January, or in November of the next year's calendar).
    seconds = _iso_seconds(f"{now.year:04d}-{_MONTHS[month]:02d}-{int(day):02d}", clock, None)
    if seconds > now.timestamp() + 86400:
        seconds = _iso_seconds(f"{now.year - 1:04d}-{_MONTHS[month]:02d}-{int(day):02d}", clock, None)
    return seconds * 1_000_000


# The times an event can carry: those of datetime (years 1-9999), which every edge formats.
MIN_TIME_US = -62_135_596_800 * 1_000_000
MAX_TIME_US = 253_402_300_799_999_999


def parse_time_value(value: Any) -> int | None:
    """A time from a JSON value: ISO 8601 text, syslog text, or epoch seconds/ms/µs; None for
    anything outside years 1-9999 (a number that large is not a time, and would not fit the wire)."""
    us = _time_value(value)
    return us if us is None or MIN_TIME_US <= us <= MAX_TIME_US else None


def _time_value(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:     # an integer beyond any float
            return None
        if not math.isfinite(number):   # `time=inf`, `time=nan`, `time=1e400`: no time
            return None
        if number > 1e17:     # ns
            return int(number / 1000)
        if number > 1e14:     # µs
            return int(number)
        if number > 1e11:     # ms
            return int(number * 1000)
        return int(number * 1_000_000)
    if isinstance(value, str):
        text = value.strip()
        match = _ISO.match(text)
        if match:
            try:
                return iso_match_to_us(match)
            except ValueError:
                return None
        match = _SYSLOG.match(text)
        if match and match.group(1) in _MONTHS:
            try:
                return _syslog_to_us(match)
            except ValueError:
                return None
        try:
            return _time_value(float(text))
        except ValueError:
            return None
    return None


# --- key=value ----------------------------------------------------------------------------------

# The lookbehind lets the scan give up at once inside a word (a key never starts after a letter:
# the match from the word's first letter would have been found first), which halves the cost on
# prose-heavy lines without changing any result.
_KV = re.compile(r'(?<![A-Za-z_@])([A-Za-z_@][\w.@-]*)=("(?:[^"\\]|\\.)*"|[^\s,;]+)')


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return value


def _apply_keys(pairs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Split a key/value mapping into the extracted targets and the leftover fields."""
    known: dict[str, Any] = {}
    rest: dict[str, Any] | None = None
    for key, value in pairs.items():
        target = _TARGET.get(key)
        if target is not None and target not in known:
            known[target] = value
        else:
            if rest is None:
                rest = {}
            rest[key] = value
    return known, rest


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _level_of(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value if 0 <= value <= 7 else None
    if isinstance(value, str):
        level = lookup_level(value.strip())
        return int(level) if level is not None else None
    return None


# --- parsers ------------------------------------------------------------------------------------

_LEADING_LEVEL = re.compile(r"\[?([A-Za-z]{3,13}|[0-7])\]?:?(?:\s+|$)")


def parse_plain(line: str) -> Parsed:
    return Parsed(None, None, line, "", "", "", None)


def parse_text(line: str) -> Parsed:
    """`TIME LEVEL message with key=value pairs` (time and level optional)."""
    time_us = None
    rest = line
    match = _ISO.match(line)
    if match:
        try:
            time_us = iso_match_to_us(match)
            rest = line[match.end():].lstrip()
        except ValueError:
            time_us = None
    elif line[:1] == "[":
        # `[2025-12-02 14:30:45] ...`: a bracketed timestamp.
        match = _ISO.match(line, 1)
        if match and line[match.end():match.end() + 1] == "]":
            try:
                time_us = iso_match_to_us(match)
                rest = line[match.end() + 1:].lstrip()
            except ValueError:
                time_us = None
    elif line[:1].isdigit():
        match = _EPOCH.match(line)
        if match:
            whole, fraction = match.groups()
            micros = int((fraction + "00000")[:6]) if fraction else 0
            time_us = int(whole) * 1_000_000 + micros if len(whole) == 10 else int(whole) * 1000 + micros // 1000
            rest = line[match.end():].lstrip()
    else:
        match = _SYSLOG.match(line)
        if match and match.group(1) in _MONTHS:
            try:
                time_us = _syslog_to_us(match)
                rest = line[match.end():].lstrip()
            except ValueError:
                time_us = None
    level = None
    match = _LEADING_LEVEL.match(rest)
    if match:
        found = lookup_level(match.group(1))
        if found is not None:
            level = int(found)
            rest = rest[match.end():]
    if "=" not in rest:
        return Parsed(time_us, level, rest, "", "", "", None)
    pairs = {key: _unquote(value) for key, value in _KV.findall(rest)}
    known, fields = _apply_keys(pairs)
    if level is None and "level" in known:
        level = _level_of(known["level"])
    if time_us is None and "time" in known:
        time_us = parse_time_value(known["time"])
    return Parsed(time_us, level, rest, _text(known.get("request_id")), _text(known.get("user")),
                  _text(known.get("action")), fields, _text(known.get("host")))


def parse_json(line: str) -> Parsed | None:
    """A JSON object line; None when the line is not one (callers fall back)."""
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    known, fields = _apply_keys(data)
    message = known.get("message")
    return Parsed(
        parse_time_value(known["time"]) if "time" in known else None,
        _level_of(known.get("level")),
        _text(message) if message is not None else line,
        _text(known.get("request_id")), _text(known.get("user")), _text(known.get("action")),
        fields, _text(known.get("host")),
    )


def python_parse_auto(line: str) -> Parsed:
    """`auto` in Python: the reference the C step is held to, and its fallback."""
    if line[:1] == "{":
        parsed = parse_json(line)
        if parsed is not None:
            return parsed
    return parse_text(line)


def _load_native() -> Any:
    """agent/_parse_native.c, set up with this module's tables; None when it is not built."""
    try:
        from fleetlog.agent import _parse_native
    except ImportError:
        return None
    from fleetlog.common.levels import _ALIASES
    index = {name: i for i, name in enumerate(("request_id", "user", "action", "level", "time", "message", "host"))}
    _parse_native.init(Parsed, {name: int(level) for name, level in _ALIASES.items()},
                       {key: index[target] for key, target in _TARGET.items()})
    return _parse_native


_native = _load_native()
# parse_text for ASCII text lines in C (None where Python must decide), or None when not built.
native_parse_text: Callable[[str], Parsed | None] | None = _native.parse_text if _native else None
# The file source's split+parse of an ASCII block for parser = "auto" (see _parse_native.c).
native_ascii_records: Callable[..., list] | None = _native.ascii_records if _native else None
# The batcher's columns of a Chunk from Records (see _parse_native.c), or None when not built.
native_columns: Callable[..., tuple] | None = _native.columns if _native else None
# The serialized Chunk of those columns (see _parse_native.c), or None when not built.
native_chunk_bytes: Callable[..., bytes] | None = _native.chunk_bytes if _native else None


def _parse_auto_native(line: str) -> Parsed:
    parsed = native_parse_text(line)   # type: ignore[misc]  # parse_auto takes this only where it is built
    return parsed if parsed is not None else python_parse_auto(line)


parse_auto = _parse_auto_native if native_parse_text is not None else python_parse_auto


def make_regex_parser(pattern: str) -> Callable[[str], Parsed]:
    """Named groups: time, level, message, request_id, user, action (and the aliases of contract §3);
    other groups go to fields. A line that does not match is kept whole as the message."""
    compiled = re.compile(pattern)

    def parse_regex(line: str) -> Parsed:
        match = compiled.search(line)
        if match is None:
            return Parsed(None, None, line, "", "", "", {"parse_error": "pattern did not match"})
        groups = {k: v for k, v in match.groupdict().items() if v is not None}
        known, fields = _apply_keys(groups)
        return Parsed(
            parse_time_value(known["time"]) if "time" in known else None,
            _level_of(known.get("level")),
            known.get("message", line),
            known.get("request_id", ""), known.get("user", ""), known.get("action", ""),
            fields, known.get("host", ""),
        )

    return parse_regex


def make_parser(kind: str, pattern: str = "") -> Callable[[str], Parsed]:
    if kind == "json":
        return lambda line: parse_json(line) or Parsed(None, None, line, "", "", "", {"parse_error": "not a JSON object"})
    if kind == "regex":
        return make_regex_parser(pattern)
    if kind == "plain":
        return parse_plain
    return parse_auto


DEFAULT_LEVEL = int(Level.INFO)
