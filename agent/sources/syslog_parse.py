"""One syslog message (the bytes of one frame) -> its parts: RFC 5424, RFC 3164 and what real senders emit.

Never raises: whatever the bytes, the result is a `SyslogMessage` whose `problem` names what was
wrong with the frame ("" when nothing was), so the listener can count it by reason and still keep
the text (a log line is never thrown away for its header).

Forms recognised, in this order, after the priority `<PRI>` (0-191):
- RFC 5424: `1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA [MSG]`, `-` for nil,
  a UTF-8 BOM before MSG dropped, and the spaces before MSG too (rsyslog forwards a message it
  received in RFC 3164 form with the space that followed its tag).
- RFC 3164 and its relatives: `TIMESTAMP [HOSTNAME] TAG[PID]: MSG`, where TIMESTAMP is
  `Mmm dd hh:mm:ss` (no year: this year, or last year when that would be more than a day
  ahead), with optional fraction and/or year (`Mmm dd yyyy hh:mm:ss`, network devices), or an
  RFC 3339 date (rsyslog's and syslog-ng's ISO forms); a leading `NNN:` sequence number and a
  `*`/`.` before the time (Cisco IOS) are accepted. The hostname is absent when the word after the
  time already is a tag (`app[12]:` or `app:`), as journald's and logger's local forms send it.
- A priority only (`<13>free text`), or no priority at all: the text is the message
  (`problem` = "no_priority": facility user, severity notice, as RFC 3164 §4.3.3 says).
A time the header does not carry, or one that does not parse, is None (the receiver uses the
time it read the frame). Times without a zone are UTC.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from typing import NamedTuple

FACILITIES = ("kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
              "ftp", "ntp", "security", "console", "solaris-cron", "local0", "local1", "local2", "local3",
              "local4", "local5", "local6", "local7")
NO_PRIORITY = 13          # user.notice, RFC 3164 §4.3.3
BOM = "\ufeff"
MAX_TIME_US = 253_402_300_799_999_999
MIN_TIME_US = -62_135_596_800 * 1_000_000

_MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep",
                                       "Oct", "Nov", "Dec"), 1)}
_PRI = re.compile(r"<(\d{1,3})>")
_RFC3339 = re.compile(r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,9}))?(Z|z|[+-]\d{2}:?\d{2})?")
# Mmm dd [yyyy] hh:mm:ss[.fff] [ZONE]  (the zone word is skipped: only "UTC"/"GMT" are unambiguous)
_BSD_TIME = re.compile(r"([A-Z][a-z]{2}) {1,2}(\d{1,2})(?: (\d{4}))? (\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?"
                       r"(?: (?:UTC|GMT|[A-Z]{3,4}))?(?=[: ]|$)")
_SEQUENCE = re.compile(r"\d{1,10}: ")
_TAG = re.compile(r"([^\s\[\]:]{1,128})(?:\[([^\]\s]{0,32})\])?:(?: |$)")
_SD_NAME = re.compile(r'[^= \]"]{1,32}')


class SyslogMessage(NamedTuple):
    facility: str             # "local0" ...; "" when the frame had no priority
    severity: int | None      # 0 emergency .. 7 debug; None when the frame had no priority
    time_us: int | None
    hostname: str             # as the sender claims it; "" for nil or absent
    app: str
    pid: int
    procid: str               # PROCID when it is not a number (kept as a field)
    msgid: str
    structured: dict[str, dict[str, str]] | None
    message: str
    form: str                 # "rfc5424" | "rfc3164" | "priority_only" | "none"
    problem: str = ""         # "" | no_priority | bad_priority | bad_timestamp | bad_structured_data


def _pri(text: str) -> tuple[int | None, int, str]:
    """(PRI value or None, where the rest starts, problem)."""
    match = _PRI.match(text)
    if match is None:
        return None, 0, "no_priority"
    value = int(match.group(1))
    if value > 191 or (len(match.group(1)) > 1 and match.group(1)[0] == "0"):
        return None, 0, "bad_priority"
    return value, match.end(), ""


def _zone_seconds(zone: str | None) -> int:
    if not zone or zone in ("Z", "z"):
        return 0
    digits = zone[1:].replace(":", "")
    seconds = int(digits[:2]) * 3600 + int(digits[2:4]) * 60
    return -seconds if zone[0] == "-" else seconds


def _epoch_us(year: int, month: int, day: int, hour: int, minute: int, second: int, fraction: str | None,
              zone_seconds: int) -> int | None:
    try:
        when = dt.datetime(year, month, day, hour, minute, min(second, 59))   # a leap second: :59
    except ValueError:
        return None
    us = (calendar.timegm(when.timetuple()) - zone_seconds) * 1_000_000
    if fraction:
        us += int((fraction + "00000")[:6])
    return us if MIN_TIME_US <= us <= MAX_TIME_US else None


def rfc3339_us(match: re.Match[str]) -> int | None:
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    return _epoch_us(int(year), int(month), int(day), int(hour), int(minute), int(second), fraction,
                     _zone_seconds(zone))


def bsd_time_us(match: re.Match[str], now: dt.datetime) -> int | None:
    month_name, day, year, hour, minute, second, fraction = match.groups()
    month = _MONTHS.get(month_name)
    if month is None:
        return None
    parts = (month, int(day), int(hour), int(minute), int(second), fraction, 0)
    if year:
        return _epoch_us(int(year), *parts)
    us = _epoch_us(now.year, *parts)
    # No year: this year, unless that is more than a day ahead (December's lines read in January).
    if us is None or us > (now.timestamp() + 86400) * 1_000_000:
        us = _epoch_us(now.year - 1, *parts)
    return us


def _word(text: str, i: int) -> tuple[str, int]:
    """The word at i (up to a space) and where the next starts."""
    end = text.find(" ", i)
    if end < 0:
        return text[i:], len(text)
    return text[i:end], end + 1


def _nil(word: str) -> str:
    return "" if word == "-" else word


def _pid(text: str) -> tuple[int, str]:
    """(pid, "") for a number the wire's uint32 holds, else (0, the text)."""
    if text.isascii() and text.isdigit() and len(text) <= 10 and int(text) < 1 << 32:
        return int(text), ""
    return 0, text


def parse_structured_data(text: str, i: int) -> tuple[dict[str, dict[str, str]] | None, int, bool]:
    """RFC 5424 STRUCTURED-DATA at i: (elements, where MSG starts, well-formed). `-` is none; a
    malformed element ends the structured data there and the rest is the message."""
    if text.startswith("-", i):
        return None, _after_space(text, i + 1), True
    if i >= len(text):
        return None, i, True
    if text[i] != "[":
        return None, i, False
    elements: dict[str, dict[str, str]] = {}
    while i < len(text) and text[i] == "[":
        start = i
        name = _SD_NAME.match(text, i + 1)
        if name is None:
            return elements or None, start, False
        params: dict[str, str] = {}
        i = name.end()
        while i < len(text) and text[i] == " ":
            param = _SD_NAME.match(text, i + 1)
            if param is None or not text.startswith('="', param.end()):
                return elements or None, start, False
            j = param.end() + 2
            value: list[str] = []
            while j < len(text) and text[j] != '"':
                if text[j] == "\\" and j + 1 < len(text) and text[j + 1] in '"\\]':
                    j += 1
                value.append(text[j])
                j += 1
            if j >= len(text):
                return elements or None, start, False
            params[param.group()] = "".join(value)
            i = j + 1
        if i >= len(text) or text[i] != "]":
            return elements or None, start, False
        elements[name.group()] = {**elements.get(name.group(), {}), **params}
        i += 1
    return elements, _after_space(text, i), True


def _after_space(text: str, i: int) -> int:
    return i + 1 if text.startswith(" ", i) else i


def _message(text: str) -> str:
    """What follows the header: a leading BOM and trailing line ends and NULs are not the message."""
    if text.startswith(BOM):
        text = text[1:]
    return text.rstrip("\r\n\0")


def _rfc5424(text: str, i: int, facility: str, severity: int | None, problem: str) -> SyslogMessage:
    stamp, i = _word(text, i)
    time_us = None
    if stamp != "-":
        match = _RFC3339.fullmatch(stamp)
        time_us = rfc3339_us(match) if match else None
        if time_us is None:
            problem = problem or "bad_timestamp"
    hostname, i = _word(text, i)
    app, i = _word(text, i)
    procid, i = _word(text, i)
    msgid, i = _word(text, i)
    structured, i, ok = parse_structured_data(text, i)
    if not ok:
        problem = problem or "bad_structured_data"
    pid, procid_text = _pid(_nil(procid))
    return SyslogMessage(facility, severity, time_us, _nil(hostname), _nil(app), pid, procid_text, _nil(msgid),
                         structured, _message(text[i:]).lstrip(" "), "rfc5424", problem)


def _rfc3164(text: str, i: int, facility: str, severity: int | None, problem: str,
             now: dt.datetime) -> SyslogMessage:
    start = i
    sequence = _SEQUENCE.match(text, i)       # Cisco IOS: "<189>123: *Mar  1 18:46:11.123: %SYS-5-..."
    if sequence:
        i = sequence.end()
    if text.startswith(("*", "."), i):
        i += 1
    time_us: int | None = None
    match = _RFC3339.match(text, i)
    if match:
        time_us = rfc3339_us(match)
    else:
        match = _BSD_TIME.match(text, i)
        if match:
            time_us = bsd_time_us(match, now)
    if match is None:
        # A priority only: the rest is the message, perhaps with a tag ("<13>sshd[7]: text").
        tagged = _TAG.match(text, start)
        if tagged and tagged.group(1)[0].isalpha():
            pid, procid = _pid(tagged.group(2) or "")
            return SyslogMessage(facility, severity, None, "", tagged.group(1), pid, procid, "", None,
                                 _message(text[tagged.end():]), "priority_only", problem)
        return SyslogMessage(facility, severity, None, "", "", 0, "", "", None, _message(text[start:]),
                             "priority_only" if problem == "" else "none", problem)
    if time_us is None:
        problem = problem or "bad_timestamp"
    i = match.end()
    if text.startswith(":", i):
        i += 1
    i = _after_space(text, i)
    hostname = ""
    tagged = _TAG.match(text, i)
    if tagged is None:
        word, after = _word(text, i)
        if word and not word.startswith("%"):     # "%SYS-5-CONFIG_I:" is a Cisco message, not a host
            hostname, i = word.rstrip(":"), after
            tagged = _TAG.match(text, i)
    app, pid, procid = "", 0, ""
    if tagged is not None and not tagged.group(1).startswith("%"):
        app = tagged.group(1)
        pid, procid = _pid(tagged.group(2) or "")
        i = tagged.end()
    return SyslogMessage(facility, severity, time_us, hostname, app, pid, procid, "", None, _message(text[i:]),
                         "rfc3164", problem)


def parse_syslog(frame: bytes | str, now: dt.datetime | None = None) -> SyslogMessage:
    """The parts of one syslog frame (bytes as received; invalid UTF-8 becomes replacement
    characters). `now` decides the year of a time that has none."""
    text = frame if isinstance(frame, str) else frame.decode("utf-8", "replace")
    value, i, problem = _pri(text)
    if value is None:
        facility, severity = FACILITIES[NO_PRIORITY >> 3], NO_PRIORITY & 7
    else:
        facility, severity = FACILITIES[value >> 3], value & 7
    if value is not None and text.startswith("1 ", i):
        return _rfc5424(text, i + 2, facility, severity, problem)
    return _rfc3164(text, i, facility, severity, problem, now or dt.datetime.now(dt.UTC))
