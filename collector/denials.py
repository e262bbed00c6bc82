"""Denials (a bad token, a role that may not do something, a namespace an agent may not write)
stored as `audit/denied` events, throttled so that no peer can flood the security tier.

A denial is stored unless
- the same one (what was denied — the console's route pattern, not the raw path —, to whom, why)
  from the same address was stored within DENIAL_AUDIT_INTERVAL, or
- its address had PEER_DENIALS_PER_INTERVAL denials stored within the interval already, or
- GLOBAL_DENIALS_PER_INTERVAL were stored within the interval from all addresses together.
What is not stored is counted: in the metric `denials_not_recorded`, and in the
`fields.repeats_not_recorded` of the next denial stored for the same address (the denials of that
address left out since its previous stored one).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import grpc
from prometheus_client import Counter

from fleetlog.collector.identity import Caller, describe_denial, peer_ip
from fleetlog.collector.internal import InternalEvent
from fleetlog.collector.own_events import OwnEvents
from fleetlog.common.levels import Level

log = logging.getLogger("fleetlog.collector")

DENIAL_AUDIT_INTERVAL = 10.0
PEER_DENIALS_PER_INTERVAL = 5
GLOBAL_DENIALS_PER_INTERVAL = 100
# Bounded memory whatever the number of distinct denials and addresses: past this, the oldest
# half is forgotten.
_MAX_TRACKED = 10_000


class Denials:
    def __init__(self, own_events: OwnEvents, not_recorded: Counter, clock: Callable[[], float] = time.monotonic):
        self._own_events = own_events
        self._not_recorded = not_recorded
        self._clock = clock
        self._last: dict[tuple[str, str], float] = {}         # (message, address) -> when stored
        self._by_peer: dict[str, deque[float]] = {}           # address -> when its last ones were stored
        self._left_out: dict[str, int] = {}                   # address -> not stored since its last one
        self._all: deque[float] = deque(maxlen=GLOBAL_DENIALS_PER_INTERVAL)

    async def record(self, caller: Caller | None, what: str, why: str,
                     context: grpc.aio.ServicerContext | None, host: str = "", ip: str = "",
                     fields: dict[str, Any] | None = None) -> None:
        """Log and store one denial of `what` to `caller` (None: not authenticated), unless the
        throttle above leaves it out. The address is the caller's, else the gRPC peer's, else `ip`
        (the console's client). `fields` go into the event (the console's raw path)."""
        message = describe_denial(caller, what, why)
        ip = caller.ip if caller else (peer_ip(context) if context is not None else ip)
        if not self._take(message, ip):
            self._left_out[ip] = self._left_out.get(ip, 0) + 1
            self._not_recorded.inc()
            self._forget_the_oldest()
            return
        log.warning("%s", message)
        event_fields: dict[str, Any] = {"operation": what, **(fields or {})}
        if context is not None:
            event_fields["peer"] = context.peer()
        repeats = self._left_out.pop(ip, 0)
        if repeats:
            event_fields["repeats_not_recorded"] = repeats
        await self._own_events.append([InternalEvent("audit/denied", message, level=Level.WARNING,
                                                     user=caller.name if caller else host, fields=event_fields)])

    def _take(self, message: str, ip: str) -> bool:
        """True (and counted as stored) when this denial may be stored now."""
        now = self._clock()
        recent = lambda times: sum(1 for t in times if now - t < DENIAL_AUDIT_INTERVAL)
        if now - self._last.get((message, ip), -DENIAL_AUDIT_INTERVAL) < DENIAL_AUDIT_INTERVAL:
            return False
        peer = self._by_peer.setdefault(ip, deque(maxlen=PEER_DENIALS_PER_INTERVAL))
        if recent(peer) >= PEER_DENIALS_PER_INTERVAL or recent(self._all) >= GLOBAL_DENIALS_PER_INTERVAL:
            return False
        self._last[(message, ip)] = now
        peer.append(now)
        self._all.append(now)
        self._forget_the_oldest()
        return True

    def _forget_the_oldest(self) -> None:
        if len(self._last) > _MAX_TRACKED:
            for key in sorted(self._last, key=self._last.__getitem__)[:_MAX_TRACKED // 2]:
                del self._last[key]
        if len(self._by_peer) > _MAX_TRACKED:
            for ip in sorted(self._by_peer, key=lambda k: self._by_peer[k][-1])[:_MAX_TRACKED // 2]:
                del self._by_peer[ip]
        if len(self._left_out) > _MAX_TRACKED:
            # Addresses forgotten here lose their pending count; the metric keeps it.
            for ip in list(self._left_out)[:_MAX_TRACKED // 2]:
                del self._left_out[ip]

    def record_soon(self, caller: Caller, what: str, why: str) -> None:
        """`record` in the background, for a path that must not wait for the audit (ingest)."""
        self._own_events.in_background(self.record(caller, what, why, None))
