"""Multiline joining: a line matching `start_pattern` begins an event, the lines that follow
(a stack trace, a wrapped message) are appended to it, joined by newlines.

An event is complete when the next start line arrives, or `max_wait` after its last line when no
more lines come. Until then it is held, and the file source's checkpoint stays at the held
event's first byte, so a restart re-reads the whole event instead of losing its head.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

from fleetlog.agent.sources.base import FLAG_TRUNCATED
from fleetlog.common.config import Duration, check_regex


@dataclass(frozen=True)
class MultilineConfig:
    """A file source's `multiline = { start_pattern, max_wait }` table."""

    start_pattern: str
    max_wait: Duration = 1.0

    def validate(self) -> None:
        check_regex("start_pattern", self.start_pattern)


class JoinedLine(NamedTuple):
    position: int      # byte offset of the event's first line
    text: str
    flags: int


class MultilineJoiner:
    def __init__(self, start_pattern: str, max_wait: float, max_chars: int):
        self.start = re.compile(start_pattern)
        self.max_wait = max_wait
        self.max_chars = max_chars
        self._parts: list[str] = []
        self._size = 0
        self._flags = 0
        self.held_start: int | None = None   # position of the held event, None when nothing held
        self.last_at = 0.0

    def feed(self, position: int, text: str, flags: int, now: float, out: list[JoinedLine]) -> None:
        """Add one line; a completed event (if this line starts a new one) is appended to `out`."""
        if self.held_start is None or self.start.search(text):
            self.flush(out)
            self.held_start, self._parts, self._size, self._flags = position, [text], len(text), flags
        elif self._size < self.max_chars:
            self._parts.append(text)
            self._size += len(text) + 1
            self._flags |= flags
        else:
            self._flags |= FLAG_TRUNCATED   # the event is already at max_line_bytes: drop the rest
        self.last_at = now

    def due(self, now: float) -> bool:
        return self.held_start is not None and now - self.last_at >= self.max_wait

    def flush(self, out: list[JoinedLine]) -> None:
        if self.held_start is None:
            return
        text = "\n".join(self._parts)
        flags = self._flags
        if len(text) > self.max_chars:
            text, flags = text[:self.max_chars], flags | FLAG_TRUNCATED
        out.append(JoinedLine(self.held_start, text, flags))
        self.held_start, self._parts, self._size, self._flags = None, [], 0, 0
