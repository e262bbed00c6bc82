"""What RFC 5424 and RFC 3164 share: facilities, PRI, and framing on a byte stream (RFC 6587)."""

from __future__ import annotations

from fleetlog.common.levels import LEVEL_NAMES

FACILITIES: dict[str, int] = {
    "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
    "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, "ntp": 12, "security": 13, "audit": 13,
    "console": 14, "solaris-cron": 15, "clock": 15,
    **{f"local{i}": 16 + i for i in range(8)},
}


def facility_code(name: str) -> int:
    """A facility name -> its code; ValueError naming the accepted names."""
    code = FACILITIES.get(name.strip().lower())
    if code is None:
        raise ValueError(f"unknown facility {name!r} (expected one of {', '.join(FACILITIES)})")
    return code


def pri(facility: int, level: str | int) -> int:
    """PRI = facility * 8 + severity; fleetlog's eight levels are the RFC 5424 severities."""
    severity = level if isinstance(level, int) else LEVEL_NAMES.index(level)
    return facility * 8 + severity


def frame_octet_counting(message: bytes) -> bytes:
    """RFC 6587 §3.4.1: `MSG-LEN SP SYSLOG-MSG`; the message may hold any byte, newlines too."""
    return b"%d %s" % (len(message), message)


def frame_lf(message: bytes) -> bytes:
    """RFC 6587 §3.4.2 non-transparent framing: LF ends a message, so LF and CR inside one are
    written the way rsyslog escapes control characters (`#012`, `#015`) instead of splitting it."""
    return message.replace(b"\n", b"#012").replace(b"\r", b"#015") + b"\n"
