"""Requests refused for what a peer sent: counted by reason, logged once per peer and cause.

A misconfigured or hostile client can send the same bad request thousands of times a second; a
log line (or a traceback) for each would fill the disk and bury everything else. So each
(peer address, reason) pair is logged at most once per `interval`, and the line after a quiet
spell says how many were refused meanwhile. The metric counts every one.
"""

from __future__ import annotations

import logging
import time

from prometheus_client import Counter

log = logging.getLogger("fleetlog.collector.rejections")

# Bounded memory whatever the number of distinct peers: past this, the oldest half is forgotten
# (at worst a forgotten peer is logged once more).
_MAX_TRACKED = 10_000


class Rejections:
    def __init__(self, counter: Counter, interval: float = 60.0, clock=time.monotonic):
        self.counter = counter
        self.interval = interval
        self.clock = clock
        self._last: dict[tuple[str, str], tuple[float, int]] = {}   # -> (logged at, refused since)

    def count(self, reason: str) -> None:
        """Count a refusal that is logged elsewhere (denials have their own rate-limited record)."""
        self.counter.labels(reason).inc()

    def refuse(self, peer: str, reason: str, message: str) -> None:
        """Count one refused request; log it unless this peer's same cause was logged recently."""
        self.counter.labels(reason).inc()
        key = (peer, reason)
        now = self.clock()
        last, repeats = self._last.get(key, (None, 0))
        if last is not None and now - last < self.interval:
            self._last[key] = (last, repeats + 1)
            return
        if len(self._last) >= _MAX_TRACKED:
            for old in sorted(self._last, key=lambda k: self._last[k][0])[:_MAX_TRACKED // 2]:
                del self._last[old]
        self._last[key] = (now, 0)
        more = f" ({repeats} more refused for the same cause since the last line)" if repeats else ""
        log.warning("refused a request from %s (%s): %s%s", peer or "unknown peer", reason, message, more)
