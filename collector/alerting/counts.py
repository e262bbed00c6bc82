"""Sliding-window counts per group of one rule, kept as events are committed (never a scan).

The window is cut into BUCKETS buckets; a group holds the buckets that have counts, oldest first,
and their sum. Adding an event is a dict lookup and an increment; expiring drops whole buckets
from the front. So a count covers the window to within one bucket (1/60 of it): an event is
counted until its bucket has wholly left the window.

Time is the event's time, but never later than when the collector received it (an agent's clock
ahead must not keep a group counting into the future); an event already older than the window
when it arrives is not counted.

Groups come from event values peers write (user names, hosts): at most `max_groups` are kept per
rule, and an event of a further group is not counted but reported (the caller's metric).
"""

from __future__ import annotations

import math
from collections import deque

BUCKETS = 60


class GroupCount:
    __slots__ = ("buckets", "total")

    def __init__(self) -> None:
        self.buckets: deque[list[int]] = deque()    # [bucket number, count], oldest first
        self.total = 0

    def add(self, bucket: int) -> None:
        self.total += 1
        buckets = self.buckets
        if buckets and buckets[-1][0] == bucket:
            buckets[-1][1] += 1
            return
        if not buckets or buckets[-1][0] < bucket:
            buckets.append([bucket, 1])
            return
        # An event older than the newest counted one (events of several nodes interleave).
        for entry in buckets:
            if entry[0] == bucket:
                entry[1] += 1
                return
        buckets.append([bucket, 1])
        self.buckets = deque(sorted(buckets))

    def expire(self, first_kept: int) -> None:
        buckets = self.buckets
        while buckets and buckets[0][0] < first_kept:
            self.total -= buckets.popleft()[1]


class RuleCounts:
    """The groups of one rule: group values -> count within the window."""

    def __init__(self, window: float, max_groups: int):
        self.window = window
        self.width = window / BUCKETS
        self.max_groups = max_groups
        self.groups: dict[tuple[str, ...], GroupCount] = {}

    def add(self, group: tuple[str, ...], time_s: float, now: float) -> bool:
        """Count one event; False when it was not counted because the rule has max_groups
        groups already (an event older than the window is simply not counted: True)."""
        if time_s <= now - self.window or not math.isfinite(time_s):
            return True
        counts = self.groups.get(group)
        if counts is None:
            if len(self.groups) >= self.max_groups:
                return False
            counts = self.groups[group] = GroupCount()
        counts.add(int(time_s // self.width))
        return True

    def expire(self, now: float) -> None:
        """Drop what has left the window, and the groups left with nothing."""
        first_kept = int((now - self.window) // self.width)
        empty = []
        for group, counts in self.groups.items():
            counts.expire(first_kept)
            if counts.total <= 0:
                empty.append(group)
        for group in empty:
            del self.groups[group]

    def count(self, group: tuple[str, ...]) -> int:
        counts = self.groups.get(group)
        return counts.total if counts is not None else 0
