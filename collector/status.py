"""`fleetlog status` and the console's status page: version and uptime, the store's size, count
and head, the next purge, every collector of a cluster, every node (with clock skew and lag), and
each forwarder's state. A namespace role sees only its own nodes, nothing global.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fleetlog.collector.alerting.evaluator import Evaluator
from fleetlog.collector.cluster import Membership
from fleetlog.collector.forward.forwarding import Forwarding
from fleetlog.collector.identity import Caller
from fleetlog.collector.metrics import CollectorMetrics
from fleetlog.collector.nodes import Nodes
from fleetlog.collector.query import QueryEngine
from fleetlog.collector.retention import RetentionScheduler
from fleetlog.collector.store import EventWriter
from fleetlog.common import __version__
from fleetlog.common.pb.fleetlog.v1 import fleetlog_pb2 as pb


@dataclass(frozen=True)
class StatusReport:
    """Assembles the StatusReply from the rooms that know each part."""

    query: QueryEngine
    store: EventWriter
    metrics: CollectorMetrics
    nodes: Nodes
    membership: Membership
    retention: RetentionScheduler
    forwarding: Forwarding
    evaluator: Evaluator
    node_name: Callable[[], str]   # the config as last reloaded
    started_at: float

    async def build(self, caller: Caller | None = None) -> pb.StatusReply:
        """The whole status for a caller of every namespace (admin, auditor, trusted) or None
        (the collector itself); for a namespace role, only what concerns its namespaces."""
        if caller is not None and caller.namespaces is not None:
            return await self.scoped(caller.namespaces)
        stored = await asyncio.to_thread(self.query.status)
        storage = self.store.storage_bytes()
        self.metrics.storage_bytes.set(storage)
        now = time.time()
        local = [pb.NodeStatus(name=n.name, ip=n.ip, connected=n.streams > 0, last_seen=n.last_seen,
                               events=n.events, lag_seconds=max(0.0, now - n.last_seen) if n.streams else 0.0,
                               clock_skew_seconds=n.clock_skew)
                 for n in sorted(self.nodes.all(), key=lambda n: n.name)]
        collectors, nodes = await self.membership.status(local)
        return pb.StatusReply(
            version=__version__, uptime_seconds=now - self.started_at, storage_bytes=storage,
            event_count=stored.event_count, collector=self.node_name(), last_seq=stored.last_seq,
            next_purge=self.retention.next_purge, collectors=collectors, nodes=nodes,
            forwarders=[pb.ForwarderStatus(name=name, state=state, lag_events=lag, last_error=error,
                                           last_error_time_us=int(error_at * 1e6))
                        for name, state, lag, error, error_at in self.forwarding.status()],
            **self.alerting(),
        )

    def alerting(self) -> dict[str, Any]:
        """The alert evaluator's part of the reply (nothing without rules)."""
        if not self.evaluator.config.rules:
            return {}
        state, alerts, receivers = self.evaluator.status()
        return {"alerting_state": state,
                "alerts": [pb.AlertStatus(labels=labels, summary=summary, count=count, firing_since=since)
                           for labels, summary, count, since in alerts],
                "alertmanagers": [pb.AlertmanagerStatus(url=url, last_error=error, last_error_time=error_at)
                                  for url, error, error_at in receivers]}

    async def scoped(self, namespaces: tuple[str, ...]) -> pb.StatusReply:
        """A namespace role's status: this collector's name, version, uptime and next purge, and
        the nodes that wrote into one of its namespaces here. No store size or count, chain,
        cluster members or forwarders (their errors name other namespaces' destinations)."""
        now = time.time()
        mine = set(namespaces)
        nodes = [pb.NodeStatus(name=n.name, ip=n.ip, connected=n.streams > 0, last_seen=n.last_seen,
                               events=n.events, lag_seconds=max(0.0, now - n.last_seen) if n.streams else 0.0,
                               clock_skew_seconds=n.clock_skew, collector=self.node_name())
                 for n in sorted(self.nodes.all(), key=lambda n: n.name) if n.namespaces & mine]
        return pb.StatusReply(version=__version__, uptime_seconds=now - self.started_at, collector=self.node_name(),
                              next_purge=self.retention.next_purge, nodes=nodes, scoped=True)
