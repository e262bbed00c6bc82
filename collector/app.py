"""CollectorApp: the collector's parts built and wired together, and its lifecycle (start, reload,
stop) and readiness. The work is done in rooms of their own: intake.py (a batch from the wire to
its commit), nodes.py, own_events.py, denials.py, follow.py, status.py, evidence.py,
checkpoint_timer.py, grpc_server.py; request handlers reach them only through running.py."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import replace
from typing import Any

from fleetlog.collector.admission import EventBudget
from fleetlog.collector.alerting.evaluator import Evaluator
from fleetlog.collector.auth_failures import AuthFailures
from fleetlog.collector.checkpoint_timer import CheckpointTimer
from fleetlog.collector.classify import Classifier
from fleetlog.collector.cluster import Membership
from fleetlog.collector.config import CollectorConfig
from fleetlog.collector.denials import Denials
from fleetlog.collector.event_times import TimePolicy
from fleetlog.collector.evidence import Evidence
from fleetlog.collector.follow import Followers
from fleetlog.collector.forward.forwarding import Forwarding
from fleetlog.collector.grpc_server import GrpcServer
from fleetlog.collector.identity import Authenticator, load_tokens
from fleetlog.collector.ingest import IngestLimits
from fleetlog.collector.intake import Intake
from fleetlog.collector.internal import InternalEvent
from fleetlog.collector.metrics import CollectorMetrics
from fleetlog.collector.nodes import Nodes
from fleetlog.collector.own_events import OwnEvents
from fleetlog.collector.preflight import check_listen_policy, writable_data_dir
from fleetlog.collector.query import QueryEngine
from fleetlog.collector.rejections import Rejections
from fleetlog.collector.retention import RetentionScheduler, recover_pending
from fleetlog.collector.running import RunningCollector
from fleetlog.collector.settings import effective
from fleetlog.collector.settings.effective import Effective
from fleetlog.collector.settings.layer import Hooks, SettingsLayer
from fleetlog.collector.settings.watcher import SettingsWatcher
from fleetlog.collector.signing import Signer, load_or_create_key, previous_default_key
from fleetlog.collector.status import StatusReport
from fleetlog.collector.store import open_backend
from fleetlog.collector.writer import StorageWriter
from fleetlog.common import __version__
from fleetlog.common.errors import StorageError, UsageError
from fleetlog.common.http_health import HealthServer

log = logging.getLogger("fleetlog.collector")

# The stop's steps and their bounds in seconds (docs/installing.md, "Stopping"); STOP_BOUND is their sum plus
# a margin, after which common/daemon.py ends the process anyway.
STOP_STEPS = {
    "stopping the web console": 3.0,       # 2 s for open requests (a live tail, a download), then cancelled
    "stopping the gRPC server": 7.0,       # 5 s for in-flight batches to commit, then cancelled
    "stopping retention": 3.0,
    "stopping the settings watcher": 2.0,
    "leaving the cluster": 3.0,
    "stopping the checkpoint timer": 2.0,
    "stopping the alert evaluator": 6.0,   # one Alertmanager request (5 s timeout) may be under way
    "recording the stop event": 5.0,
    "stopping the forwarders": 8.0,
    "signing the store's head": 5.0,
    "stopping the storage writer": 5.0,
}
STOP_BOUND = sum(STOP_STEPS.values()) + 5.0


class CollectorApp:
    def __init__(self, config: CollectorConfig):
        check_listen_policy(config)
        self.config = config
        self.started_at = time.time()
        self.data_dir = writable_data_dir(config)
        self.metrics = metrics = CollectorMetrics()
        self.classifier = Classifier(config)
        tokens = load_tokens(config.tokens_file) if config.tokens_file else None
        authenticator = Authenticator(tokens, mtls=bool(config.tls and config.tls.require_client_cert))
        self.backend = open_backend(config, str(self.data_dir))
        # The settings managed live (collector/settings/): collector.toml + the store's entries.
        self.file_config = config
        self.authenticator = authenticator
        self.settings_watcher = SettingsWatcher(
            self.backend.settings_store(), config, lambda: {e.name for e in authenticator.file_tokens.values()},
            self._apply_settings, authenticator.take_uses)
        try:
            settled = self.settings_watcher.load()
            self.config = config = self._keep_restart_bound(settled.config)
            authenticator.set_stored_tokens(settled.tokens)
            self.classifier = Classifier(config)
            metrics.settings_version.set(self.settings_watcher.version)
        except StorageError as exc:   # a database gone again: the watcher applies them once it answers
            log.warning("settings: cannot read them yet (%s); running with collector.toml's", exc)
        self.store = store = self.backend.writer
        key, self.signing_key_path, _ = load_or_create_key(config.signing.key, str(self.data_dir))
        self.signer = Signer(key, config.node_name, config.signing.checkpoint_every,
                             on_signed=metrics.checkpoints_signed)
        with contextlib.suppress(StorageError):   # a database not up yet: set at the first checkpoint
            metrics.checkpoint_time.set(store.last_checkpoint_time())
        self.stop_bound = STOP_BOUND
        self.stop_step = "not stopping"
        self.writer = StorageWriter(store, on_commit=self._after_commit,
                                    on_failed_commit=lambda exc: metrics.ingest_errors.inc())
        query = QueryEngine(self.backend.reader)
        metrics.storage_up.set_function(lambda: 1.0 if self.storage_up else 0.0)
        self.retention = RetentionScheduler(config, self.backend.reader, self.writer,
                                            on_purged=lambda tier, n: metrics.purged.labels(tier).inc(n),
                                            on_run=metrics.purge_ran)
        metrics.watch(store, self.backend.location, lambda: self.ready()[0], lambda: self.retention.next_purge)
        metrics.show_intervals(config)
        self.port = 0
        node_name = self._node_name
        self.own_events = OwnEvents(self.writer, query, store.chain, node_name)
        self.followers = Followers(query, store.chain)
        self.checkpoint_timer = CheckpointTimer(self.writer, self.signer,
                                                lambda: self.config.signing.checkpoint_interval)
        self.grpc = GrpcServer()
        self.http = HealthServer(config.metrics.listen, metrics.registry, self.ready)
        self.forwarding = Forwarding(self.backend, metrics, self.own_events.from_thread)
        self.evaluator = Evaluator(config.alerting, self.backend, metrics, self.own_events.events_from_thread,
                                   node_name, console_url(config))
        nodes = Nodes(metrics)
        self.membership = Membership(self.backend, config.node_name, lambda: self.address, self.started_at,
                                     nodes.all)
        denials = Denials(self.own_events, metrics.denials_not_recorded)
        intake = Intake(budget=EventBudget(config.ingest.max_pending_events, config.ingest.max_pending_bytes),
                        limits=IngestLimits(config.ingest.max_message_bytes, config.ingest.max_batch_events),
                        classifier=lambda: self.classifier, writer=self.writer, nodes=nodes, metrics=metrics,
                        denials=denials, times=TimePolicy.of(config))
        status = StatusReport(query=query, store=store, metrics=metrics, nodes=nodes, membership=self.membership,
                              retention=self.retention, forwarding=self.forwarding, evaluator=self.evaluator,
                              node_name=node_name,
                              started_at=self.started_at)
        self.collector = RunningCollector(
            authenticator=authenticator, auth_failures=AuthFailures(), rejections=Rejections(metrics.requests_rejected), intake=intake,
            nodes=nodes, own_events=self.own_events, denials=denials, query=query, store=store,
            followers=self.followers, status=status, evidence=Evidence(self.writer, self.signer, node_name),
            node_name=node_name, data_dir=str(self.data_dir), settings=self._settings_layer(query))
        self.web = None
        if config.web is not None:
            # Imported here: aiohttp and Jinja2 are loaded only by a collector with a console.
            from fleetlog.collector.web import WebConsole
            self.web = WebConsole(self.collector, config.web, config.tls)

    def _settings_layer(self, query: QueryEngine) -> SettingsLayer:
        authenticator = self.authenticator
        hooks = Hooks(record=self.own_events.append, forwarder_status=self.forwarding.status,
                      histogram=query.histogram,
                      file_tokens=lambda: {e.name: e for e in authenticator.file_tokens.values()},
                      token_uses=lambda: {**self.settings_watcher.uses},
                      node_name=self._node_name, accepts_tokens=lambda: not authenticator.open,
                      alerts_firing=self._alerts_firing)
        return SettingsLayer(self.settings_watcher, hooks)

    def _keep_restart_bound(self, config: CollectorConfig) -> CollectorConfig:
        """What changes only with a restart keeps its running value (listen, tls, the console)."""
        current = getattr(self, "config", config)
        if config.listen != current.listen or config.tls != current.tls:
            log.warning("listen and tls changes need a restart; keeping %s", current.listen)
            config = replace(config, listen=current.listen, tls=current.tls)
        if config.web != current.web:
            log.warning("[web] changes need a restart; keeping the console as it is")
            config = replace(config, web=current.web)
        return config

    async def _apply_settings(self, settled: Effective) -> None:
        """The settings watcher's hand-over: collector.toml + the store's entries, applied through
        the reload paths (a forwarder that cannot be built raises ConfigError: nothing changes)."""
        config = self._keep_restart_bound(settled.config)
        await asyncio.to_thread(self.forwarding.reload, list(config.forwarders))
        self.config = config
        self.classifier = Classifier(config)
        self.retention.reconfigure(config)
        self.evaluator.reload(config.alerting, console_url(config))
        if config.alerting.rules:
            self.evaluator.start()
        self.metrics.show_intervals(config)
        self.authenticator.set_stored_tokens(settled.tokens)
        self.metrics.settings_version.set(max(self.settings_watcher.version, 0))

    def _alerts_firing(self) -> dict[str, int]:
        firing: dict[str, int] = {}
        for labels, _summary, _count, _since in self.evaluator.status()[1]:
            firing[labels["alertname"]] = firing.get(labels["alertname"], 0) + 1
        return firing

    def _node_name(self) -> str:
        return self.config.node_name   # the rooms read it at each use: the config as last reloaded

    @property
    def storage_up(self) -> bool:
        """False while the store does not answer (a PostgreSQL backend's database is down) or
        refuses writes (a full disk, a read-only file system: the writer holds the batches)."""
        return bool(getattr(self.backend, "up", True)) and not self.writer.fault

    @property
    def address(self) -> str:
        """Where agents and the CLI reach this collector (the listen address, with the real port)."""
        host = self.config.listen_host
        return f"{host}:{self.port}" if self.port else self.config.listen

    def _after_commit(self, results: list[Any]) -> None:
        """Writer thread: wake forwarders and followers."""
        self.forwarding.wake()
        self.evaluator.wake.set()
        self.followers.wake_from_thread()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.own_events.start(loop)
        self.followers.start(loop)
        self.port = self.grpc.bind(self.config, self.collector)
        if self.web is not None:
            # First, so a console that cannot listen stops the start with nothing else running;
            # and before readiness: ready means the console answers too.
            await self.web.start()
        await self.grpc.start()
        self.http.start()
        await self.grpc.serving()
        previous = previous_default_key(config_key=self.config.signing.key, data_dir=str(self.data_dir))
        await self.writer.call(lambda store: self.signer.attach(store, previous))
        await self.writer.call(lambda store: recover_pending(store, self.config.node_name))
        startup = []
        if self.store.created:
            startup.append(InternalEvent("Collector.Database.Create",
                                         f"event database created at {self.backend.location}", tier="permanent"))
        startup.append(InternalEvent("Collector.Start", f"collector {self.config.node_name} {__version__} started, "
                                     f"listening on {self.config.listen}", tier="permanent"))
        await self.own_events.append(startup)
        self.retention.start()
        self.membership.start()
        self.forwarding.start(list(self.config.forwarders))
        self.settings_watcher.start()
        if self.config.alerting.rules:
            self.evaluator.start()
        await self.writer.call(self.signer.checkpoint_head)
        self.checkpoint_timer.start()
        log.info("collector %s listening on %s (port %d), store %s", self.config.node_name, self.config.listen,
                 self.port, self.backend.location)

    async def stop(self) -> None:
        """Stop accepting, let in-flight batches commit, record a clean shutdown, close storage.
        Every step is bounded (STOP_STEPS); one that overruns is logged and the stop goes on, so the
        whole stop ends within STOP_BOUND. Only committed batches were acknowledged, so a step left
        unfinished loses nothing: agents re-send the rest, forwarders resume from their cursors."""
        if self.web is not None:
            await self._stop_step("stopping the web console", self.web.stop())
        if self.grpc.started:
            await self._stop_step("stopping the gRPC server",
                                  self.grpc.stop(STOP_STEPS["stopping the gRPC server"] - 2.0))
        await self._stop_step("stopping retention", self.retention.stop())
        await self._stop_step("stopping the settings watcher", self.settings_watcher.stop())
        await self._stop_step("leaving the cluster", self.membership.stop())
        await self._stop_step("stopping the checkpoint timer", self.checkpoint_timer.stop())
        await self._stop_step("stopping the alert evaluator", asyncio.to_thread(self.evaluator.stop))
        stop_event = InternalEvent("Collector.Stop", f"collector {self.config.node_name} stopped cleanly",
                                   tier="permanent")
        await self._stop_step("recording the stop event", self.own_events.append([stop_event]))
        # Cursors are saved; the rest is sent after restart.
        await self._stop_step("stopping the forwarders", asyncio.to_thread(self.forwarding.stop))
        await self._stop_step("signing the store's head",   # a stopped store is signed to its end
                              self.writer.call(self.signer.checkpoint_head))
        if await self._stop_step("stopping the storage writer", asyncio.to_thread(self.writer.stop)):
            self.backend.close()
        self.http.stop()

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
        """Apply what can change without a restart: thresholds, tiers, retention, forwarders, with
        the settings kept in the store on top (collector/settings/effective.py)."""
        self.file_config = config = self._keep_restart_bound(config)
        try:
            settled = effective.build(config, self.settings_watcher.rows, self.settings_watcher.file_tokens())
        except UsageError as exc:
            log.error("settings do not build with the new collector.toml (%s); applying collector.toml alone", exc)
            settled = effective.Effective(config, ())
        await self._apply_settings(settled)
        self.settings_watcher.file_config = config
        self.settings_watcher.effective = settled

    def ready(self) -> tuple[bool, str]:
        if not self.grpc.started:
            return False, "listener not started"
        if not self.writer.alive:
            return False, "storage writer stopped"
        if self.writer.fault:
            return False, f"storage not writable: {self.writer.fault}"
        if not self.storage_up:
            return False, "storage unreachable"
        return True, "ready"


def console_url(config: CollectorConfig) -> str:
    """The base of alerts' generatorURL: alerting.console_url, else the console's listen address."""
    if config.alerting.console_url:
        return config.alerting.console_url
    if config.web is None:
        return ""
    return f"{'https' if config.tls is not None else 'http'}://{config.web.listen}"
