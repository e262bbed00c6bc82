"""The collector's Prometheus metrics (contract §4.9), in one registry per collector process.

Beyond the contract's list (§4.9), the gauges the shipped alert rules (deploy/prometheus/fleetlog-alerts.yml)
need to decide alone: readiness, the file system under data_dir, the chain head against the last
signed checkpoint, and the purge schedule — each with the configured interval beside it, so a
rule compares against the collector's own settings instead of a number copied into the rule.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from fleetlog.collector.config import CollectorConfig
from fleetlog.collector.retention import PURGED_TIERS
from fleetlog.collector.store import EventWriter
from fleetlog.common.metrics import register_standard

DROP_REASONS = ("below_level", "namespace_denied", "bad_batch")


def filesystem_bytes(path: str) -> tuple[int, int]:
    """(size, available to an unprivileged writer) of the file system holding `path`."""
    st = os.statvfs(path)
    return st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize


class CollectorMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        p = "fleetlog_collector_"
        self.received = Counter(p + "events_received", "Events received from agents.", ["host"], registry=r)
        self.stored = Counter(p + "events_stored", "Events committed to storage.", ["host"], registry=r)
        self.duplicate = Counter(p + "events_duplicate", "Re-delivered events not stored again.", ["host"],
                                 registry=r)
        self.dropped = Counter(p + "events_dropped", "Events not stored, by reason.", ["reason"], registry=r)
        self.time_adjusted = Counter(p + "events_time_adjusted", "Events stored with the time they were received "
                                     "instead of theirs (fields.original_time), by reason.", ["reason"], registry=r)
        self.ingest_batch_seconds = Histogram(
            p + "ingest_batch_seconds", "Time from receiving a batch to its commit.", registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.agents_connected = Gauge(p + "agents_connected", "Agent streams open now.", registry=r)
        self.agent_last_seen = Gauge(p + "agent_last_seen_timestamp_seconds", "When each agent last sent.",
                                     ["host"], registry=r)
        self.storage_bytes = Gauge(p + "storage_bytes", "Size of the event store on disk.", registry=r)
        self.storage_up = Gauge(p + "storage_up", "1 while the event store answers, 0 while it does not "
                                "(a PostgreSQL store's database down, a full or read-only disk: batches "
                                "are held, not acknowledged).", registry=r)
        self.settings_version = Gauge(p + "settings_version", "Version of the settings managed live that this "
                                      "collector runs (docs/settings.md); every collector of a cluster "
                                      "reaches the same within seconds.", registry=r)
        self.purged = Counter(p + "events_purged", "Events deleted by retention.", ["tier"], registry=r)
        self.forward_events = Counter(p + "forward_events", "Events delivered by each forwarder.",
                                      ["forwarder"], registry=r)
        self.forward_lag = Gauge(p + "forward_lag_events", "Stored events a forwarder has not delivered.",
                                 ["forwarder"], registry=r)
        self.forward_errors = Counter(p + "forward_errors", "Forwarder delivery failures.", ["forwarder"],
                                      registry=r)
        self.requests_rejected = Counter(
            p + "requests_rejected", "Requests refused for what the peer sent (malformed, over a limit, "
            "unauthenticated), by reason.", ["reason"], registry=r)
        self.denials_not_recorded = Counter(
            p + "denials_not_recorded", "Denials not stored as audit/denied events by the throttle (the same one "
            "within 10 s, or past the per-address or overall rate); the next stored one counts them.", registry=r)
        self.checkpoints = Counter(p + "checkpoints", "Signed checkpoints written.", registry=r)
        self.clock_skew = Gauge(p + "agent_clock_skew_seconds", "Agent clock minus collector clock.",
                                ["host"], registry=r)
        self.ready = Gauge(p + "ready", "1 when the collector is ready (as /readyz), else 0.", registry=r)
        self.ingest_errors = Counter(p + "ingest_errors", "Storage transactions of ingested batches that failed "
                                     "(held and retried, or refused; agents keep and re-send them).", registry=r)
        self.filesystem_size = Gauge(p + "storage_filesystem_size_bytes",
                                     "Size of the file system holding data_dir.", registry=r)
        self.filesystem_avail = Gauge(p + "storage_filesystem_avail_bytes",
                                      "Bytes still available on the file system holding data_dir.", registry=r)
        self.chain_head_seq = Gauge(p + "chain_head_seq", "Sequence number of the newest stored event.",
                                    registry=r)
        self.checkpoint_seq = Gauge(p + "last_checkpoint_seq", "Sequence number the newest signed "
                                    "checkpoint covers.", registry=r)
        self.checkpoint_time = Gauge(p + "last_checkpoint_timestamp_seconds",
                                     "When the newest checkpoint was signed (0: none yet).", registry=r)
        self.checkpoint_interval = Gauge(p + "checkpoint_interval_seconds",
                                         "signing.checkpoint_interval as configured.", registry=r)
        self.next_purge = Gauge(p + "next_purge_timestamp_seconds", "When the next retention purge is due.",
                                registry=r)
        self.last_purge = Gauge(p + "last_purge_timestamp_seconds",
                                "When the last retention purge finished without error (0: none yet).",
                                registry=r)
        self.purge_interval = Gauge(p + "purge_interval_seconds", "retention.purge_interval as configured.",
                                    registry=r)
        self.purge_failures = Counter(p + "purge_failures", "Retention purges that failed.", registry=r)
        # The alert evaluator (collector/alerting/): the shipped rules watch it with these.
        self.alert_evaluation_seconds = Histogram(
            p + "alert_evaluation_seconds", "Time one evaluation of the alert rules took (deciding and sending).",
            registry=r, buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30))
        self.alert_last_evaluation = Gauge(p + "alert_last_evaluation_timestamp_seconds",
                                           "When the alert rules were last evaluated here (0: never, or "
                                           "another collector of the cluster evaluates them).", registry=r)
        self.alert_evaluation_interval = Gauge(p + "alert_evaluation_interval_seconds",
                                               "alerting.evaluation_interval as configured (0: no rules).",
                                               registry=r)
        self.alert_evaluator_active = Gauge(p + "alert_evaluator_active", "1 while this collector holds the "
                                            "alert evaluator's lease and evaluates the rules.", registry=r)
        self.alerts_firing = Gauge(p + "alerts_firing", "Alerts firing now (rule and group).", registry=r)
        self.alert_notifications = Counter(p + "alert_notifications", "Alert notifications Alertmanager "
                                           "accepted, by Alertmanager URL.", ["alertmanager"], registry=r)
        self.alert_notifications_failed = Counter(p + "alert_notifications_failed", "Alert notifications that "
                                                  "failed (retried at the next evaluation), by Alertmanager URL.",
                                                  ["alertmanager"], registry=r)
        self.alert_events_evaluated = Counter(p + "alert_events_evaluated", "Committed events the alert "
                                              "evaluator has read.", registry=r)
        self.alert_groups_dropped = Counter(p + "alert_groups_dropped", "Matching events not counted because "
                                            "their rule already counts max_groups_per_rule groups.", ["rule"],
                                            registry=r)
        # Every known reason and tier from the start, at 0: a series that first appears at 1 is
        # invisible to increase() and rate(), so the first rejected batch would raise no alert.
        for reason in DROP_REASONS:
            self.dropped.labels(reason)
        for tier in PURGED_TIERS:
            self.purged.labels(tier)
        register_standard(r, "collector")

    def watch_filesystem(self, path: str) -> None:
        """The size and free space under `path`, read at each scrape."""
        self.filesystem_size.set_function(lambda: filesystem_bytes(path)[0])
        self.filesystem_avail.set_function(lambda: filesystem_bytes(path)[1])

    def watch(self, store: EventWriter, location: str, ready: Callable[[], bool],
              next_purge: Callable[[], float]) -> None:
        """The gauges read at each scrape: the store's size, head and newest checkpoint, the file
        system holding it (`location`), readiness and the next purge."""
        self.storage_bytes.set_function(store.storage_bytes)
        self.watch_filesystem(os.path.dirname(os.path.abspath(location)))
        self.ready.set_function(lambda: 1 if ready() else 0)
        self.chain_head_seq.set_function(lambda: store.last_seq)
        self.checkpoint_seq.set_function(lambda: store.last_checkpoint_seq)
        self.next_purge.set_function(next_purge)

    def show_intervals(self, config: CollectorConfig) -> None:
        """The configured intervals the alert rules compare with (again after a reload)."""
        self.checkpoint_interval.set(config.signing.checkpoint_interval)
        self.purge_interval.set(config.retention.purge_interval)
        self.alert_evaluation_interval.set(config.alerting.evaluation_interval if config.alerting.rules else 0)
        for url in config.alerting.alertmanager_urls:
            self.alert_notifications_failed.labels(url)

    def checkpoints_signed(self, count: int) -> None:
        self.checkpoints.inc(count)
        self.checkpoint_time.set(time.time())

    def purge_ran(self, ok: bool) -> None:
        if ok:
            self.last_purge.set(time.time())
        else:
            self.purge_failures.inc()
