"""Denials (a bad token, a role that may not do something, a namespace an agent may not write)
stored as `audit/denied` events, throttled.

The same denial (message and peer address) is stored at most once per DENIAL_AUDIT_INTERVAL; the
repeats in between are counted into the next one. A misconfigured agent retrying, or a namespace
denied on every batch, would otherwise flood the security tier.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import grpc

from fleetlog.collector.identity import Caller, describe_denial, peer_ip
from fleetlog.collector.internal import InternalEvent
from fleetlog.collector.own_events import OwnEvents
from fleetlog.common.levels import Level

log = logging.getLogger("fleetlog.collector")

DENIAL_AUDIT_INTERVAL = 10.0
# Bounded memory whatever the number of distinct denials: past this, the oldest half is forgotten.
_MAX_TRACKED = 10_000


class Denials:
    def __init__(self, own_events: OwnEvents):
        self._own_events = own_events
        self._recorded: dict[tuple[str, str], tuple[float, int]] = {}   # -> (when, repeats since)

    async def record(self, caller: Caller | None, what: str, why: str,
                     context: grpc.aio.ServicerContext | None, host: str = "", ip: str = "") -> None:
        """Log and store one denial of `what` to `caller` (None: not authenticated), unless the
        same one from the same address was stored within the interval. The address is the
        caller's, else the gRPC peer's, else `ip` (the console's client)."""
        message = describe_denial(caller, what, why)
        ip = caller.ip if caller else (peer_ip(context) if context is not None else ip)
        now = time.monotonic()
        last, repeats = self._recorded.get((message, ip), (-DENIAL_AUDIT_INTERVAL, 0))
        if now - last < DENIAL_AUDIT_INTERVAL:
            self._recorded[(message, ip)] = (last, repeats + 1)
            return
        self._recorded[(message, ip)] = (now, 0)
        if len(self._recorded) > _MAX_TRACKED:
            for key in sorted(self._recorded, key=lambda k: self._recorded[k][0])[:_MAX_TRACKED // 2]:
                del self._recorded[key]
        log.warning("%s", message)
        fields: dict[str, Any] = {"operation": what}
        if context is not None:
            fields["peer"] = context.peer()
        if repeats:
            fields["repeats_not_recorded"] = repeats
        await self._own_events.append([InternalEvent("audit/denied", message, level=Level.WARNING,
                                                     user=caller.name if caller else host, fields=fields)])

    def record_soon(self, caller: Caller, what: str, why: str) -> None:
        """`record` in the background, for a path that must not wait for the audit (ingest)."""
        self._own_events.in_background(self.record(caller, what, why, None))
