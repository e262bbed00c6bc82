"""Sizes (`64KiB`, `256MiB`) and durations (`500ms`, `10s`, `90d`, `1y`, `indefinite`)."""

from __future__ import annotations

import math
import re

_SIZE_UNITS = {
    "": 1, "b": 1,
    "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4,
    "k": 1024, "m": 1024**2, "g": 1024**3,
}
_DURATION_UNITS = {
    "us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400,
    "y": 365 * 86400,
}
_NUMBER_UNIT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(value: str | int) -> int:
    """Bytes from an integer or a string such as `64KiB`; ValueError when unreadable."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        match = _NUMBER_UNIT.match(value)
        if match and match.group(2).lower() in _SIZE_UNITS:
            return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])
    raise ValueError(f"expected a size such as \"64KiB\" or \"256MiB\", got {value!r}")


def parse_duration(value: str | float) -> float:
    """Seconds from a number or a string such as `500ms`, `15m`, `90d`; `indefinite` is inf."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value)
    if isinstance(value, str):
        if value.strip().lower() == "indefinite":
            return math.inf
        match = _NUMBER_UNIT.match(value)
        if match and match.group(2).lower() in _DURATION_UNITS:
            return float(match.group(1)) * _DURATION_UNITS[match.group(2).lower()]
    raise ValueError(f"expected a duration such as \"500ms\", \"10s\", \"90d\" or \"indefinite\", got {value!r}")


def format_duration(seconds: float) -> str:
    """The shortest exact spelling of a duration, for printing effective configs."""
    if math.isinf(seconds):
        return "indefinite"
    if seconds == 0:
        return "0s"             # not "0.0s" (an alert rule's default `for`)
    for unit in ("y", "d", "h", "m", "s", "ms"):
        count = seconds / _DURATION_UNITS[unit]
        if count >= 1 and abs(count - round(count)) < 1e-9:
            return f"{round(count)}{unit}"
    return f"{seconds}s"


def format_size(size: int) -> str:
    for unit in ("GiB", "MiB", "KiB"):
        factor = _SIZE_UNITS[unit.lower()]
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)
