"""The collector's part in a cluster of collectors sharing one PostgreSQL store (contract §7).

Every HEARTBEAT_INTERVAL the collector records itself (version, address) and the nodes it serves
in the database; the same round trip is its storage health probe (readiness and
`fleetlog_collector_storage_up`). `fleetlog status` on any collector then lists every collector
and every node with the collector it is connected to. With a backend that has no cluster (SQLite)
none of this runs and status shows this collector's nodes, as before.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from fleetlog.common import __version__
from fleetlog.common.errors import StorageError
from fleetlog.common.pb.fleetlog.v1 import fleetlog_pb2 as pb

log = logging.getLogger("fleetlog.collector.cluster")

HEARTBEAT_INTERVAL = 2.0
ALIVE_WITHIN = 15.0      # a collector whose heartbeat is older is shown as not alive


class Membership:
    def __init__(self, backend: Any, node_name: str, address: Callable[[], str], started_at: float,
                 nodes: Callable[[], Iterable[Any]]):
        self.backend = backend
        self.node_name = node_name
        self.address = address
        self.started_at = started_at
        self.nodes = nodes
        self._task: asyncio.Task[Any] | None = None

    @property
    def enabled(self) -> bool:
        return hasattr(self.backend, "heartbeat")

    def start(self) -> None:
        if self.enabled:
            self._task = asyncio.create_task(self._loop(), name="cluster-heartbeat")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def beat(self) -> None:
        nodes = [(n.name, n.ip, n.streams > 0, int(n.last_seen * 1_000_000)) for n in self.nodes()]
        await asyncio.to_thread(self.backend.heartbeat, __version__, self.address(),
                                int(self.started_at * 1_000_000), nodes)

    async def _loop(self) -> None:
        failing = False
        while True:
            try:
                await self.beat()
                if failing:
                    log.warning("the database answers again")
                failing = False
            except StorageError as exc:
                if not failing:
                    log.error("the database does not answer; not acknowledging batches until it does: %s", exc)
                failing = True
            await asyncio.sleep(HEARTBEAT_INTERVAL)

    async def status(self, local: list[pb.NodeStatus]) -> tuple[list[pb.CollectorStatus], list[pb.NodeStatus]]:
        """Every collector, and every node (this collector's own with their live details)."""
        for node in local:
            node.collector = self.node_name
        if not self.enabled:
            return [], local
        collectors, nodes = await asyncio.to_thread(self.backend.members)
        now = time.time()
        members = [pb.CollectorStatus(name=name, version=version, address=address, started_at=started / 1e6,
                                      last_heartbeat=beat / 1e6, alive=now - beat / 1e6 <= ALIVE_WITHIN)
                   for name, version, address, started, beat in collectors]
        mine = {n.name: n for n in local if n.connected}
        merged = dict(mine)
        for name, collector, ip, connected, last_seen in nodes:
            if name in merged:
                continue
            own = next((n for n in local if n.name == name), None)
            if own is not None and collector == self.node_name:
                merged[name] = own
                continue
            merged[name] = pb.NodeStatus(name=name, ip=ip, connected=connected, last_seen=last_seen / 1e6,
                                         collector=collector)
        for node in local:
            merged.setdefault(node.name, node)
        return members, [merged[name] for name in sorted(merged)]
