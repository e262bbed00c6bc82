"""The agents this collector serves, one NodeState per node name: streams open now, when it last
sent, how many of its events were stored, its clock's skew. The ingest path keeps them current
(with the per-node metrics beside them); status and the cluster heartbeat read them.

Lives on the event loop only: nothing here is touched from a worker thread.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from fleetlog.collector.ingest import PreparedBatch
from fleetlog.collector.metrics import CollectorMetrics


@dataclass
class NodeState:
    name: str
    ip: str = ""
    streams: int = 0
    last_seen: float = 0.0
    events: int = 0
    last_event_lag: float = 0.0
    clock_skew: float = 0.0
    # The namespaces it wrote into (bounded): status shows a namespace role only these nodes.
    namespaces: set[str] = field(default_factory=set)


MAX_NAMESPACES_PER_NODE = 100


class Nodes:
    def __init__(self, metrics: CollectorMetrics):
        self._metrics = metrics
        self._by_name: dict[str, NodeState] = {}

    def get(self, name: str) -> NodeState:
        """The node's state, created on first mention."""
        node = self._by_name.get(name)
        if node is None:
            node = self._by_name[name] = NodeState(name)
        return node

    def all(self) -> list[NodeState]:
        return list(self._by_name.values())

    def connected(self, name: str, ip: str, delta: int) -> None:
        """An ingest stream of `name` opened (+1) or closed (-1)."""
        node = self.get(name)
        node.streams += delta
        node.ip = ip or node.ip
        node.last_seen = time.time()
        self._metrics.agents_connected.set(sum(1 for n in self._by_name.values() if n.streams > 0))

    def batch_arrived(self, host: str, sent_at_us: int) -> None:
        """A batch came in; `sent_at_us` (the agent's clock, 0 when unknown) gives the skew."""
        now = time.time()
        node = self.get(host)
        node.last_seen = now
        self._metrics.agent_last_seen.labels(host).set(now)
        if sent_at_us:
            node.clock_skew = sent_at_us / 1e6 - now
            self._metrics.clock_skew.labels(host).set(node.clock_skew)

    def received(self, host: str, prepared: PreparedBatch) -> None:
        """Count what a prepared batch held, and what of it was dropped and why."""
        written = self.get(host).namespaces
        for chunk in prepared.events:
            if len(written) < MAX_NAMESPACES_PER_NODE:
                written.add(chunk.namespace)
        self._metrics.received.labels(host).inc(prepared.received)
        if prepared.dropped_below_level:
            self._metrics.dropped.labels("below_level").inc(prepared.dropped_below_level)
        if prepared.denied:
            self._metrics.dropped.labels("namespace_denied").inc(prepared.denied)

    def stored(self, host: str, stored: int, duplicates: int) -> None:
        """Count what a committed batch stored and what it re-delivered."""
        if stored:
            self._metrics.stored.labels(host).inc(stored)
            self.get(host).events += stored
        if duplicates:
            self._metrics.duplicate.labels(host).inc(duplicates)
