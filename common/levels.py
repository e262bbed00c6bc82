"""The eight severities of RFC 5424 and the many names other software uses for them."""

from __future__ import annotations

import enum


class Level(enum.IntEnum):
    EMERGENCY = 0
    ALERT = 1
    CRITICAL = 2
    ERROR = 3
    WARNING = 4
    NOTICE = 5
    INFO = 6
    DEBUG = 7

    @property
    def label(self) -> str:
        return self.name.lower()


LEVEL_NAMES: tuple[str, ...] = tuple(level.label for level in Level)

_ALIASES: dict[str, Level] = {level.label: level for level in Level}
_ALIASES.update(
    {
        "emerg": Level.EMERGENCY, "fatal": Level.EMERGENCY, "panic": Level.EMERGENCY,
        "crit": Level.CRITICAL,
        "err": Level.ERROR,
        "warn": Level.WARNING,
        "informational": Level.INFO, "information": Level.INFO,
        "trace": Level.DEBUG,
    }
)
_ALIASES.update({str(int(level)): level for level in Level})


def parse_level(value: str | int) -> Level:
    """Map a level name (any scheme, any case) or a syslog/journald PRIORITY 0-7 to a Level.

    Raises ValueError naming the accepted names for anything else.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        if 0 <= value <= 7:
            return Level(value)
    elif isinstance(value, str):
        found = _ALIASES.get(value.strip().lower())
        if found is not None:
            return found
    raise ValueError(f"unknown level {value!r} (expected one of {', '.join(LEVEL_NAMES)})")


def lookup_level(value: str) -> Level | None:
    """Like parse_level for text found in log lines: None instead of an error."""
    return _ALIASES.get(value.lower())
