"""AgentApp: sources -> batcher -> outbox -> shipper, plus metrics and lifecycle.

Checkpoints: a source's position advances only when the batch holding its events is durable in
the disk spool (written and fsynced); the spool keeps the batch until the collector acknowledges
it, so a crash at any moment loses nothing and re-sends at most what the collector deduplicates.
"""

from __future__ import annotations

import asyncio
import logging
import pathlib
from typing import Any

from fleetlog.agent.batcher import Batcher, SealedBatch
from fleetlog.agent.config import AgentConfig
from fleetlog.agent.metrics import AgentMetrics
from fleetlog.agent.shipper import Shipper
from fleetlog.agent.sources import build_source
from fleetlog.agent.sources.base import Source, SourceBatch
from fleetlog.agent.spool import DiskSpool
from fleetlog.common.errors import ConfigError
from fleetlog.common.http_health import HealthServer
from fleetlog.common.pb.fleetlog.v1 import fleetlog_pb2 as pb

log = logging.getLogger("fleetlog.agent")

# Settings a SIGHUP cannot change in a running agent (sources and their filters can).
# Stop bounds (docs/installing.md, "Stopping"): the spool gets DRAIN_TIMEOUT to be acknowledged; sealing the last
# batch and ending the tasks are bounded too, and STOP_BOUND is the whole stop's ceiling, after
# which common/daemon.py ends the process anyway (the spool is on disk: nothing is lost).
DRAIN_TIMEOUT = 5.0
SEAL_TIMEOUT = 2.0
TASK_TIMEOUT = 2.0
STOP_BOUND = DRAIN_TIMEOUT + SEAL_TIMEOUT + TASK_TIMEOUT + 3.0

RESTART_KEYS = ("node_name", "namespace", "state_dir", "collectors", "token_file", "tls", "spool", "batch", "metrics")


def read_token(path: str | None) -> str | None:
    if not path:
        return None
    try:
        token = pathlib.Path(path).read_text().strip()
    except OSError as exc:
        raise ConfigError(f"agent.toml: token_file: cannot read {path}: {exc.strerror}") from None
    if not token:
        raise ConfigError(f"agent.toml: token_file: {path} is empty")
    return token


class AgentApp:
    def __init__(self, config: AgentConfig):
        self.config = config
        self.state_dir = pathlib.Path(config.state_dir)
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"agent.toml: state_dir: cannot create {config.state_dir}: {exc.strerror}") from None
        self.metrics = AgentMetrics()
        self.metrics.spool_max_bytes.set(config.spool.max_bytes)
        self.token = read_token(config.token_file)
        self.sources: list[Source] = [self._build(s) for s in config.sources]
        try:
            self.outbox = DiskSpool(self.state_dir / "spool", config.spool.max_bytes, config.spool.when_full,
                                    on_drop=lambda n: self.metrics.dropped.labels("spool_full").inc(n))
        except OSError as exc:
            raise ConfigError(f"agent.toml: state_dir: cannot use {config.state_dir}/spool: {exc.strerror}") from None
        self.batcher = Batcher(config.namespace, config.batch.max_events, config.batch.max_bytes,
                               config.batch.max_wait, config.batch.compression, self._spool_batch,
                               first_batch_id=self.outbox.next_batch_id,
                               on_dropped=lambda n: self.metrics.dropped.labels("filtered").inc(n))
        self.shipper = Shipper(
            collectors=list(config.collectors), node_name=config.node_name, outbox=self.outbox,
            on_ack=self._on_ack, token=self.token, tls=config.tls,
            on_state=self._on_state, on_error=lambda reason: self.metrics.send_errors.inc())
        self.http = HealthServer(config.metrics.listen, self.metrics.registry, self.ready)
        self._tasks: list[asyncio.Task[Any]] = []
        self._source_tasks: list[asyncio.Task[Any]] = []
        self.stop_bound = STOP_BOUND
        self.stop_step = "not stopping"

    def _build(self, config: Any) -> Source:
        return build_source(config, self.state_dir, self._on_read, self.metrics.receivers, self._spool_room)

    def _spool_room(self, size: int) -> bool:
        """Whether a receiver's request of about `size` bytes can be spooled without waiting: room for
        it and for the batch being filled (`block`), and a spool that can be written."""
        spool = self.outbox
        if spool.fault:
            return False
        return (spool.when_full != "block"
                or spool.pending_bytes() + size + self.config.batch.max_bytes <= spool.max_bytes)

    def _on_read(self, source: str, count: int) -> None:
        self.metrics.read.labels(source).inc(count)

    def _on_state(self, connected: bool, address: str) -> None:
        self.metrics.connected.set(1 if connected else 0)

    def _on_ack(self, batch: SealedBatch, reply: pb.IngestReply, latency: float) -> None:
        self.metrics.acked.inc(batch.events)
        self.metrics.ack_latency.observe(latency)
        if reply.dropped:
            self.metrics.dropped.labels("collector_threshold").inc(reply.dropped)
        self._update_gauges()

    async def _spool_batch(self, batch: SealedBatch) -> None:
        """The batcher's sink: durable in the spool first, then the sources may move on."""
        await self.outbox.put(batch)
        for source, checkpoint in batch.checkpoints:
            source.commit(checkpoint)
        self._update_gauges()

    def _update_gauges(self) -> None:
        self.metrics.spool_events.set(self.outbox.pending_events())
        self.metrics.spool_bytes.set(self.outbox.pending_bytes())

    def _emitter(self, source: Source) -> Any:
        async def emit(batch: SourceBatch) -> None:
            await self.batcher.add(batch, source)
            self._update_gauges()
        return emit

    async def start(self) -> None:
        self.http.start()
        self._start_sources(self.sources)
        self._tasks.append(asyncio.create_task(self.batcher.run_timer(), name="batch-timer"))
        self._tasks.append(asyncio.create_task(self.shipper.run(), name="shipper"))
        self._tasks.append(asyncio.create_task(self._lag_loop(), name="lag"))
        for task in self._tasks:
            task.add_done_callback(self._task_done)
        log.info("agent %s started with %d source(s), collectors %s", self.config.node_name,
                 len(self.sources), ", ".join(self.config.collectors))

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed: %r", task.get_name(), task.exception())

    async def _lag_loop(self) -> None:
        while True:
            for source in self.sources:
                for label, lag in source.lag_bytes().items():
                    self.metrics.source_lag.labels(label).set(lag)
            await asyncio.sleep(1.0)

    async def reload(self, config: AgentConfig) -> None:
        """Apply new sources and their parsing and filters. The running sources stop as they do at a
        clean stop: what they read is sealed into the spool and checkpointed first, so the new
        sources (which load the checkpoints) resume exactly there — nothing lost, nothing read
        twice. Connection, spool and batch settings need a restart; the log says which changed."""
        needs_restart = [key for key in RESTART_KEYS if getattr(config, key) != getattr(self.config, key)]
        if needs_restart:
            log.warning("reload: %s changed; these take effect at the next restart", ", ".join(needs_restart))
        if config.sources == self.config.sources:
            return
        await self._stop_sources()
        try:
            sources = [self._build(s) for s in config.sources]
        except ConfigError:
            sources = [self._build(s) for s in self.config.sources]
            self._start_sources(sources)
            raise
        self._start_sources(sources)
        self.config = config
        log.info("reload: %d source(s) now running", len(sources))

    async def _stop_sources(self, bound: float = 5.0) -> None:
        """Cancel the sources and seal what they read into the spool. Bounded: with the spool full
        (`when_full = "block"`) sealing cannot finish; then what was read stays unsealed and
        uncheckpointed, so it is read again at the next start — nothing is lost."""
        self.stop_step = "stopping the sources"
        for task in self._source_tasks:
            task.cancel()
        if self._source_tasks:
            await asyncio.wait(self._source_tasks, timeout=bound)
        self._source_tasks = []
        self.stop_step = "sealing the last batch into the spool"
        flush = asyncio.create_task(self.batcher.flush(), name="seal-last-batch")
        done, _ = await asyncio.wait({flush}, timeout=bound)
        if not done:
            flush.cancel()
            log.warning("stop: the spool is full; %d event(s) read but not sealed will be read again at the "
                        "next start", self.batcher.pending_events())

    def _start_sources(self, sources: list[Source]) -> None:
        self.sources = sources
        for source in sources:
            task = asyncio.create_task(source.run(self._emitter(source)), name=f"source:{source.name}")
            task.add_done_callback(self._task_done)
            self._source_tasks.append(task)

    async def stop(self) -> None:
        """Stop reading, seal what was read, give in-flight batches DRAIN_TIMEOUT to be acknowledged,
        then stop shipping. Every step is bounded, so the whole stop takes at most STOP_BOUND; what
        is not acknowledged by then stays in the spool for the next start."""
        await self._stop_sources(bound=SEAL_TIMEOUT)
        self.stop_step = "waiting for the collector to acknowledge the spool"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DRAIN_TIMEOUT
        while self.outbox.pending_events() and loop.time() < deadline and self.shipper.connected_to:
            await asyncio.sleep(0.05)
        self.stop_step = "stopping the shipper"
        self.shipper.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.wait(self._tasks, timeout=TASK_TIMEOUT)
        stuck = [task.get_name() for task in self._tasks if not task.done()]
        if stuck:
            log.error("stop: %s did not end within %.0f s; stopping without it", ", ".join(stuck), TASK_TIMEOUT)
        self.stop_step = "closing the spool"
        self.outbox.close()
        if self.outbox.pending_events():
            log.info("stop: %d event(s) stay in the spool for the next start", self.outbox.pending_events())
        self.http.stop()

    def stop_progress(self) -> str:
        """What the stop is doing now, for the error line when it overruns STOP_BOUND."""
        return f"{self.stop_step}; {self.outbox.pending_events()} event(s) stay in the spool"

    def ready(self) -> tuple[bool, str]:
        fault = getattr(self.outbox, "fault", None)
        if fault:
            return False, f"reading paused: {fault}"
        if self.shipper.connected_to:
            return True, f"connected to {self.shipper.connected_to}"
        return False, "not connected to a collector"
