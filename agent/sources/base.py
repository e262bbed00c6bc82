"""The source interface: what every agent source (file, journald, ...) provides.

A source runs until cancelled and hands `SourceBatch`es to `emit`, which may wait (backpressure:
the spool is full, or the window of unsent batches is). After the pipeline has made a batch
durable (in the spool, or acknowledged by the collector), it calls `commit(batch.checkpoint)`:
only then may the source persist its position past those events.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from fleetlog.agent.parse import Parsed

FLAG_TRUNCATED = 1


class Record(NamedTuple):
    position: int           # unique and increasing within the source identity (byte offset, seqnum)
    parsed: Parsed
    app: str = ""
    pid: int = 0
    flags: int = 0          # FLAG_TRUNCATED
    read_time_us: int = 0   # used when the line carries no time of its own


@dataclass
class SourceBatch:
    source: str             # "file:/var/log/app.log" or "journald:sshd.service"
    source_key: str         # the stable identity events are deduplicated under
    log_type: str
    records: list[Record]
    checkpoint: Any         # opaque; handed back to Source.commit once durable
    read_bytes: int = 0
    min_level: int = 7
    filters: Any = None     # common.event_filter.EventFilter of the source, or None
    extra: dict = field(default_factory=dict)
    namespace: str = ""     # "" = the agent's namespace
    relayed_host: str = ""  # receivers: the sender as the relay knows it (stored as `host`, contract §10)


Emit = Callable[[SourceBatch], Awaitable[None]]


class Source(Protocol):
    name: str

    async def run(self, emit: Emit) -> None:
        """Read until cancelled; emit batches in position order per source identity."""

    def commit(self, checkpoint: Any) -> None:
        """Everything up to `checkpoint` is durable downstream: persist the position."""

    def lag_bytes(self) -> dict[str, int]:
        """Per source label: bytes not yet committed (file size minus checkpoint)."""
