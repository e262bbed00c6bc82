"""CollectorApp: the collector's parts wired together — store, writer, identity, classification,
query engine, metrics, gRPC server — and its lifecycle (start, reload, stop)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import pathlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from fleetlog.collector.admission import EventBudget
from fleetlog.collector.classify import Classifier
from fleetlog.collector.cluster import Membership
from fleetlog.collector.config import CollectorConfig
from fleetlog.collector.filters import FilterSpec, build_filter_spec
from fleetlog.collector.forward.forwarding import Forwarding
from fleetlog.collector.gate import AuthGate
from fleetlog.collector.identity import Authenticator, Caller, describe_denial, load_tokens, peer_ip
from fleetlog.collector.ingest import IngestLimits, PreparedBatch
from fleetlog.collector.internal import InternalEvent, append_internal
from fleetlog.collector.metrics import CollectorMetrics
from fleetlog.collector.query import QueryEngine
from fleetlog.collector.rejections import Rejections
from fleetlog.collector.retention import RetentionScheduler, recover_pending
from fleetlog.collector.service import AdminService, IngestService, QueryService
from fleetlog.collector.signing import Signer, evidence_of, load_or_create_key, previous_default_key
from fleetlog.collector.store import EventWriter, open_backend
from fleetlog.collector.writer import StorageWriter
from fleetlog.common import __version__
from fleetlog.common.bundle_attestation import Attestation
from fleetlog.common.errors import ConfigError, StorageError, UsageError
from fleetlog.common.http_health import HealthServer
from fleetlog.common.levels import Level
from fleetlog.common.pb.fleetlog.v1 import fleetlog_pb2 as pb
from fleetlog.common.pb.fleetlog.v1 import fleetlog_pb2_grpc as pb_grpc
from fleetlog.common.timefmt import now_us
from fleetlog.common.tls import TlsFiles, server_credentials

log = logging.getLogger("fleetlog.collector")

# The same denial (message and peer address) is stored at most once per interval; the repeats in
# between are counted into the next one. A misconfigured agent retrying, or a namespace denied on
# every batch, would otherwise flood the security tier.
DENIAL_AUDIT_INTERVAL = 10.0
# The stop's steps and their bounds in seconds (docs/installing.md, "Stopping"); STOP_BOUND is their sum plus
# a margin, after which common/daemon.py ends the process anyway.
STOP_STEPS = {
    "stopping the web console": 3.0,       # 2 s for open requests (a live tail, a download), then cancelled
    "stopping the gRPC server": 7.0,       # 5 s for in-flight batches to commit, then cancelled
    "stopping retention": 3.0,
    "leaving the cluster": 3.0,
    "stopping the checkpoint timer": 2.0,
    "recording the stop event": 5.0,
    "stopping the forwarders": 8.0,
    "signing the store's head": 5.0,
    "stopping the storage writer": 5.0,
}
STOP_BOUND = sum(STOP_STEPS.values()) + 5.0
# How long a connection may take to become an HTTP/2 connection (TLS and the client preface): a
# peer that connects and sends nothing holds a descriptor for no longer than this.
HANDSHAKE_TIMEOUT_MS = 10_000


def grpc_server_options(config: CollectorConfig) -> list[tuple[str, int]]:
    """Bounds on what one peer may hold: message size (gRPC refuses larger ones with
    RESOURCE_EXHAUSTED before reading them into memory), streams per connection, and keepalive
    enforcement (agents ping every 10 s; a peer pinging more often than every 5 s without data
    is sent GOAWAY after two strikes)."""
    return [
        ("grpc.max_receive_message_length", config.ingest.max_message_bytes),
        ("grpc.max_send_message_length", 64 * 1024 * 1024),
        ("grpc.max_concurrent_streams", config.ingest.max_streams_per_connection),
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.keepalive_timeout_ms", 20_000),
        ("grpc.http2.ping_timeout_ms", 20_000),   # else grpc waits 60 s for a ping's answer
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
        ("grpc.http2.max_ping_strikes", 2),
        ("grpc.server_handshake_timeout_ms", HANDSHAKE_TIMEOUT_MS),
        # Without BDP probing a stream's receive window stays small unless its handler is
        # reading: a stream waiting for admission holds one message, not megabytes more in
        # grpc's buffers (measured: 16 flooding streams, peak RSS 511 -> 329 MiB).
        ("grpc.http2.bdp_probe", 0),
    ]


def check_listen_policy(config: CollectorConfig) -> None:
    """SPEC §4.1: without TLS and tokens, listen on loopback only unless `insecure = true`.
    (Loading collector.toml checks the same; this guards configs built in code.)"""
    problem = config.listen_policy_problem()
    if problem:
        raise ConfigError(f"collector.toml: listen: {problem}")


def _check_writable(folder: pathlib.Path) -> None:
    """A data_dir that cannot be written is said plainly at start (SQLite would say "unable to
    open database file"), before anything in it is touched."""
    probe = folder / ".fleetlog-write-probe"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise StorageError(f"collector.toml: data_dir: cannot write in {folder}: {exc.strerror}") from None


@dataclass
class NodeState:
    name: str
    ip: str = ""
    streams: int = 0
    last_seen: float = 0.0
    events: int = 0
    last_event_lag: float = 0.0
    clock_skew: float = 0.0


def chain_head_evidence(store: EventWriter) -> dict[str, Any]:
    """Hook for bundles: the chain head (seq, link) as the writer sees it, committed state only."""
    return {"head_seq": store.last_seq, "head_link_hex": store.chain_head.hex() if store.last_seq else ""}


class CollectorApp:
    def __init__(self, config: CollectorConfig):
        check_listen_policy(config)
        self.config = config
        self.started_at = time.time()
        self.data_dir = pathlib.Path(config.data_dir)
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"collector.toml: data_dir: cannot create {config.data_dir}: {exc.strerror}") from None
        _check_writable(self.data_dir)
        self.metrics = CollectorMetrics()
        self.classifier = Classifier(config)
        tokens = load_tokens(config.tokens_file) if config.tokens_file else None
        self.authenticator = Authenticator(tokens, mtls=bool(config.tls and config.tls.require_client_cert))
        self.backend = open_backend(config, str(self.data_dir))
        self.store = self.backend.writer
        self.db_path = self.backend.location
        key, self.signing_key_path, _ = load_or_create_key(config.signing.key, str(self.data_dir))
        self.signer = Signer(key, config.node_name, config.signing.checkpoint_every, on_signed=self._signed)
        with contextlib.suppress(StorageError):   # a database not up yet: set at the first checkpoint
            self.metrics.checkpoint_time.set(self.store.last_checkpoint_time())
        self._checkpoint_task: asyncio.Task[Any] | None = None
        self.stop_bound = STOP_BOUND
        self.stop_step = "not stopping"
        self.writer = StorageWriter(self.store, on_commit=self._after_commit,
                                    on_failed_commit=lambda exc: self.metrics.ingest_errors.inc())
        self.admission = EventBudget(config.ingest.max_pending_events, config.ingest.max_pending_bytes)
        self.ingest_limits = IngestLimits(config.ingest.max_message_bytes, config.ingest.max_batch_events)
        self.rejections = Rejections(self.metrics.requests_rejected)
        self.query = QueryEngine(self.backend.reader)
        self.metrics.storage_up.set_function(lambda: 1.0 if self.storage_up else 0.0)
        self.retention = RetentionScheduler(config, self.backend.reader, self.writer,
                                            on_purged=lambda tier, n: self.metrics.purged.labels(tier).inc(n),
                                            on_run=self._purge_ran)
        self._watch(config)
        self.nodes: dict[str, NodeState] = {}
        self._denials_recorded: dict[tuple[str, str], tuple[float, int]] = {}   # -> (when, repeats since)
        self.server: grpc.aio.Server | None = None
        self.port = 0
        self._committed = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.health = health.aio.HealthServicer()
        self.http = HealthServer(config.metrics.listen, self.metrics.registry, self.ready)
        self.forwarding = Forwarding(self.backend, self.metrics, self._record_from_thread)
        self.web = None
        if config.web is not None:
            # Imported here: aiohttp and Jinja2 are loaded only by a collector with a console.
            from fleetlog.collector.web import WebConsole
            self.web = WebConsole(self, config.web, config.tls)
        self.membership = Membership(self.backend, config.node_name, lambda: self.address, self.started_at,
                                     lambda: list(self.nodes.values()))

    @property
    def storage_up(self) -> bool:
        """False while the store does not answer (a PostgreSQL backend's database is down)."""
        return bool(getattr(self.backend, "up", True))

    @property
    def address(self) -> str:
        """Where agents and the CLI reach this collector (the listen address, with the real port)."""
        host = self.config.listen_host
        return f"{host}:{self.port}" if self.port else self.config.listen

    # -- lifecycle ---------------------------------------------------------------------------

    def _watch(self, config: CollectorConfig) -> None:
        """Gauges read at each scrape, and the configured intervals the alert rules compare with."""
        m = self.metrics
        m.storage_bytes.set_function(self.store.storage_bytes)
        m.watch_filesystem(os.path.dirname(os.path.abspath(self.db_path)))
        m.ready.set_function(lambda: 1 if self.ready()[0] else 0)
        m.chain_head_seq.set_function(lambda: self.store.last_seq)
        m.checkpoint_seq.set_function(lambda: self.store.last_checkpoint_seq)
        m.next_purge.set_function(lambda: self.retention.next_purge)
        m.checkpoint_interval.set(config.signing.checkpoint_interval)
        m.purge_interval.set(config.retention.purge_interval)

    def _signed(self, count: int) -> None:
        self.metrics.checkpoints.inc(count)
        self.metrics.checkpoint_time.set(time.time())

    def _purge_ran(self, ok: bool) -> None:
        if ok:
            self.metrics.last_purge.set(time.time())
        else:
            self.metrics.purge_failures.inc()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        server = grpc.aio.server(options=grpc_server_options(self.config), interceptors=[AuthGate(self)])
        server.add_generic_rpc_handlers((IngestService(self).handler(),))
        pb_grpc.add_QueryServicer_to_server(QueryService(self), server)
        pb_grpc.add_AdminServicer_to_server(AdminService(self), server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        address = self.config.listen
        if self.config.tls is not None:
            tls = self.config.tls
            creds = server_credentials(TlsFiles(tls.ca, tls.cert, tls.key), tls.require_client_cert)
            self.port = server.add_secure_port(address, creds)
        else:
            self.port = server.add_insecure_port(address)
        if self.port == 0:
            raise ConfigError(f"collector.toml: listen: cannot listen on {address}")
        if self.web is not None:
            # First, so a console that cannot listen stops the start with nothing else running;
            # and before readiness: ready means the console answers too.
            await self.web.start()
        await server.start()
        self.server = server
        self.http.start()
        await self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        for service in ("fleetlog.v1.Ingest", "fleetlog.v1.Query", "fleetlog.v1.Admin"):
            await self.health.set(service, health_pb2.HealthCheckResponse.SERVING)
        previous = previous_default_key(config_key=self.config.signing.key, data_dir=str(self.data_dir))
        await self.writer.call(lambda store: self.signer.attach(store, previous))
        await self.writer.call(lambda store: recover_pending(store, self.config.node_name))
        startup = []
        if self.store.created:
            startup.append(InternalEvent("Collector.Database.Create", f"event database created at {self.db_path}",
                                         tier="permanent"))
        startup.append(InternalEvent("Collector.Start", f"collector {self.config.node_name} {__version__} started, "
                                     f"listening on {self.config.listen}", tier="permanent"))
        await self.writer.call(lambda store: append_internal(store, self.config.node_name, startup))
        self.retention.start()
        self.membership.start()
        self.forwarding.start(list(self.config.forwarders))
        await self.writer.call(self.signer.checkpoint_head)
        self._checkpoint_task = asyncio.ensure_future(self._checkpoint_timer())
        log.info("collector %s listening on %s (port %d), store %s", self.config.node_name, address,
                 self.port, self.db_path)

    async def stop(self) -> None:
        """Stop accepting, let in-flight batches commit, record a clean shutdown, close storage.
        Every step is bounded (STOP_STEPS); one that overruns is logged and the stop goes on, so the
        whole stop ends within STOP_BOUND. Only committed batches were acknowledged, so a step left
        unfinished loses nothing: agents re-send the rest, forwarders resume from their cursors."""
        if self.web is not None:
            await self._stop_step("stopping the web console", self.web.stop())
        if self.server is not None:
            await self._stop_step("stopping the gRPC server", self._stop_server())
        await self._stop_step("stopping retention", self.retention.stop())
        await self._stop_step("leaving the cluster", self.membership.stop())
        if self._checkpoint_task is not None:
            self._checkpoint_task.cancel()
            await self._stop_step("stopping the checkpoint timer", asyncio.wait({self._checkpoint_task}))
        stop_event = [InternalEvent("Collector.Stop", f"collector {self.config.node_name} stopped cleanly",
                                    tier="permanent")]
        await self._stop_step("recording the stop event",
                              self.writer.call(lambda store: append_internal(store, self.config.node_name, stop_event)))
        # Cursors are saved; the rest is sent after restart.
        await self._stop_step("stopping the forwarders", asyncio.to_thread(self.forwarding.stop))
        await self._stop_step("signing the store's head",   # a stopped store is signed to its end
                              self.writer.call(self.signer.checkpoint_head))
        if await self._stop_step("stopping the storage writer", asyncio.to_thread(self.writer.stop)):
            self.backend.close()
        self.http.stop()

    async def _stop_server(self) -> None:
        await self.health.enter_graceful_shutdown()
        assert self.server is not None
        await self.server.stop(STOP_STEPS["stopping the gRPC server"] - 2.0)

    async def _stop_step(self, step: str, work: Any) -> bool:
        """Run one step of the stop within its bound; False (and an error line) when it overran."""
        self.stop_step = step
        task = asyncio.ensure_future(work)
        done, _ = await asyncio.wait({task}, timeout=STOP_STEPS[step])
        if not done:
            task.cancel()
            log.error("stop: %s did not finish within %.0f s; going on without it", step, STOP_STEPS[step])
            return False
        if task.exception() is not None:
            log.error("stop: %s failed: %s", step, task.exception())
            return False
        return True

    def stop_progress(self) -> str:
        return self.stop_step

    async def reload(self, config: CollectorConfig) -> None:
        """Apply what can change without a restart: thresholds, tiers, retention, forwarders."""
        if config.listen != self.config.listen or config.tls != self.config.tls:
            log.warning("listen and tls changes need a restart; keeping %s", self.config.listen)
            config = replace(config, listen=self.config.listen, tls=self.config.tls)
        if config.web != self.config.web:
            log.warning("[web] changes need a restart; keeping the console as it is")
            config = replace(config, web=self.config.web)
        await asyncio.to_thread(self.forwarding.reload, list(config.forwarders))
        self.config = config
        self.classifier = Classifier(config)
        self.retention.reconfigure(config)
        self.metrics.checkpoint_interval.set(config.signing.checkpoint_interval)
        self.metrics.purge_interval.set(config.retention.purge_interval)

    def ready(self) -> tuple[bool, str]:
        if self.server is None:
            return False, "listener not started"
        if not self.writer.alive:
            return False, "storage writer stopped"
        if self.writer.fault:
            return False, f"storage not writable: {self.writer.fault}"
        if not self.storage_up:
            return False, "storage unreachable"
        return True, "ready"

    # -- ingest bookkeeping --------------------------------------------------------------------

    def _node(self, name: str) -> NodeState:
        node = self.nodes.get(name)
        if node is None:
            node = self.nodes[name] = NodeState(name)
        return node

    def agent_connected(self, name: str, ip: str, delta: int) -> None:
        node = self._node(name)
        node.streams += delta
        node.ip = ip or node.ip
        node.last_seen = time.time()
        self.metrics.agents_connected.set(sum(1 for n in self.nodes.values() if n.streams > 0))

    def note_batch(self, host: str, sent_at_us: int) -> None:
        now = time.time()
        node = self._node(host)
        node.last_seen = now
        self.metrics.agent_last_seen.labels(host).set(now)
        if sent_at_us:
            node.clock_skew = sent_at_us / 1e6 - now
            self.metrics.clock_skew.labels(host).set(node.clock_skew)

    def count_received(self, host: str, prepared: PreparedBatch) -> None:
        self.metrics.received.labels(host).inc(prepared.received)
        if prepared.dropped_below_level:
            self.metrics.dropped.labels("below_level").inc(prepared.dropped_below_level)
        if prepared.denied:
            self.metrics.dropped.labels("namespace_denied").inc(prepared.denied)
            for namespace in prepared.denied_namespaces:
                self._spawn(self.record_denial(Caller(host, "agent", self._node(host).ip), "ingest",
                                               f"may not write namespace {namespace!r}", None))

    def count_stored(self, host: str, stored: int, duplicates: int) -> None:
        if stored:
            self.metrics.stored.labels(host).inc(stored)
            self._node(host).events += stored
        if duplicates:
            self.metrics.duplicate.labels(host).inc(duplicates)

    def _after_commit(self, results: list[Any]) -> None:
        """Writer thread: wake followers and forwarders."""
        self.forwarding.wake()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._committed.set)

    def _record_from_thread(self, action: str, message: str, level: Level) -> None:
        """A forwarder thread reports an outage or recovery as an event in the store."""
        if self._loop is not None:
            event = InternalEvent(action, message, level=level, tier="general")
            self._loop.call_soon_threadsafe(lambda: self._spawn(self._internal([event])))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Future[Any]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        if isinstance(exc, StorageError) and self.writer.fault:
            # An internal event (a forwarder's outage, a denial) that cannot be stored while the
            # storage is not writable: the writer has said so once; not a line per event.
            log.debug("not recorded while storage is not writable: %s", exc)
            return
        log.error("background task failed: %s", exc)

    # -- internal events -----------------------------------------------------------------------

    async def _internal(self, events: list[InternalEvent]) -> tuple[int, str]:
        result = await self.writer.call(lambda store: append_internal(store, self.config.node_name, events))
        return result.last_seq, ""

    async def record_search(self, caller: Caller, purpose: str, raw_filters: dict[str, str],
                            via: str = "") -> None:
        """`via` names a front end other than gRPC (the console: "web")."""
        text = " ".join(f"--{k.replace('_', '-')}={v!r}" for k, v in sorted(raw_filters.items())) or "(no filters)"
        fields: dict[str, Any] = {"purpose": purpose, "filters": raw_filters, "peer_ip": caller.ip}
        if via:
            fields["via"] = via
        await self._internal([InternalEvent("audit/search", f"{purpose}: {text}", user=caller.name,
                                            fields=fields)])

    async def record_denial(self, caller: Caller | None, what: str, why: str,
                            context: grpc.aio.ServicerContext | None, host: str = "", ip: str = "") -> None:
        message = describe_denial(caller, what, why)
        ip = caller.ip if caller else (peer_ip(context) if context is not None else ip)
        now = time.monotonic()
        last, repeats = self._denials_recorded.get((message, ip), (-DENIAL_AUDIT_INTERVAL, 0))
        if now - last < DENIAL_AUDIT_INTERVAL:
            self._denials_recorded[(message, ip)] = (last, repeats + 1)
            return
        self._denials_recorded[(message, ip)] = (now, 0)
        if len(self._denials_recorded) > 10_000:   # bounded: forget the oldest half
            for key in sorted(self._denials_recorded, key=lambda k: self._denials_recorded[k][0])[:5_000]:
                del self._denials_recorded[key]
        log.warning("%s", message)
        fields: dict[str, Any] = {"operation": what}
        if context is not None:
            fields["peer"] = context.peer()
        if repeats:
            fields["repeats_not_recorded"] = repeats
        await self._internal([InternalEvent("audit/denied", message, level=Level.WARNING,
                                            user=caller.name if caller else host, fields=fields)])

    async def add_note(self, caller: Caller, text: str) -> tuple[int, str]:
        seq, _ = await self._internal([InternalEvent("Admin.EventLog.Note", text, user=caller.name,
                                                     fields={"author": caller.name})])
        event_id = await asyncio.to_thread(self.query.event_id, self.store.chain, seq)
        return seq, event_id or ""

    # -- queries -------------------------------------------------------------------------------

    def filter_spec(self, raw: dict[str, str], caller: Caller) -> FilterSpec:
        spec = build_filter_spec(raw)
        if caller.namespaces is not None:
            spec = replace(spec, allowed_namespaces=tuple(caller.namespaces))
        return spec

    async def follow(self, spec: FilterSpec, cursor: dict[str, int]
                     ) -> AsyncIterator[tuple[list[dict[str, Any]], dict[str, int]]]:
        """Pages of matching events as they are committed, after `cursor` (chain -> seq; one chain
        is today's after_seq), each with the cursor past it. Each chain is read in seq order up
        to what it has committed, so nothing is missed or repeated while several collectors of a
        cluster commit at once; a cluster's commits elsewhere are found by the 1 s poll."""
        while True:
            self._committed.clear()
            events, cursor = await asyncio.to_thread(self.query.read_after, spec, cursor)
            if events:
                yield events, cursor
                continue
            try:
                async with asyncio.timeout(1.0):
                    await self._committed.wait()
            except TimeoutError:
                pass  # poll anyway: a commit signalled before clear() is never missed for long

    async def follow_start(self, after_seq: int, cursor_json: str) -> dict[str, int]:
        """Where a follow starts: the client's cursor, else after_seq on a one-chain store, else
        the heads (now)."""
        if cursor_json:
            try:
                cursor = json.loads(cursor_json)
                if not isinstance(cursor, dict) or not all(isinstance(k, str) and isinstance(v, int) and v >= 0
                                                           for k, v in cursor.items()):
                    raise ValueError("not an object of chain -> seq")
            except ValueError as exc:
                raise UsageError(f"follow: cursor_json: {exc}") from None
            return cursor
        heads = (await asyncio.to_thread(self.query.status)).heads
        if after_seq and len(heads) <= 1:
            return {self.store.chain: after_seq}
        return heads

    async def status(self) -> pb.StatusReply:
        stored = await asyncio.to_thread(self.query.status)
        count, last_seq = stored.event_count, stored.last_seq
        storage = self.store.storage_bytes()
        self.metrics.storage_bytes.set(storage)
        now = time.time()
        local = [pb.NodeStatus(name=n.name, ip=n.ip, connected=n.streams > 0, last_seen=n.last_seen,
                               events=n.events, lag_seconds=max(0.0, now - n.last_seen) if n.streams else 0.0,
                               clock_skew_seconds=n.clock_skew)
                 for n in sorted(self.nodes.values(), key=lambda n: n.name)]
        collectors, nodes = await self.membership.status(local)
        return pb.StatusReply(
            version=__version__, uptime_seconds=now - self.started_at, storage_bytes=storage,
            event_count=count, collector=self.config.node_name, last_seq=last_seq,
            next_purge=self.retention.next_purge, collectors=collectors, nodes=nodes,
            forwarders=[pb.ForwarderStatus(name=name, state=state, lag_events=lag, last_error=error,
                                           last_error_time_us=int(error_at * 1e6))
                        for name, state, lag, error, error_at in self.forwarding.status()],
        )

    async def chain_status(self) -> dict[str, Any]:
        """The chain head and the newest signed checkpoint, read without signing anything."""
        return await self.writer.call(lambda store: {**chain_head_evidence(store),
                                                      **evidence_of(store, self.signer.key_id)})

    async def evidence(self, request: pb.EvidenceRequest) -> pb.EvidenceReply:
        def collect(store: EventWriter) -> dict[str, Any]:
            self.signer.checkpoint_head(store)   # a bundle gets a checkpoint covering all it holds
            return {**chain_head_evidence(store), **evidence_of(store, self.signer.key_id)}
        reply = pb.EvidenceReply(**await self.writer.call(collect))
        if request.bundle_digests_sha256:
            attestation = Attestation(self.config.node_name, request.bundle_events, request.bundle_digests_sha256,
                                      now_us(), self.signer.key_id).signed(self.signer.key)
            reply.bundle_attestation_json = json.dumps(attestation.to_json())
        return reply

    async def _checkpoint_timer(self) -> None:
        """Sign the head every checkpoint_interval when events came in since the last checkpoint."""
        while True:
            await asyncio.sleep(self.config.signing.checkpoint_interval)
            if self.writer.fault:
                continue   # said once by the writer; the head is signed once it can be written
            try:
                await self.writer.call(self.signer.checkpoint_head)
            except Exception as exc:  # noqa: BLE001 — logged; the next interval tries again
                log.error("signing a checkpoint failed: %s", exc)

