"""The collector's Prometheus metrics (SPEC §4.9), in one registry per collector process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class CollectorMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        p = "fleetlog_collector_"
        self.received = Counter(p + "events_received", "Events received from agents.", ["host"], registry=r)
        self.stored = Counter(p + "events_stored", "Events committed to storage.", ["host"], registry=r)
        self.duplicate = Counter(p + "events_duplicate", "Re-delivered events not stored again.", ["host"],
                                 registry=r)
        self.dropped = Counter(p + "events_dropped", "Events not stored, by reason.", ["reason"], registry=r)
        self.ingest_batch_seconds = Histogram(
            p + "ingest_batch_seconds", "Time from receiving a batch to its commit.", registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.agents_connected = Gauge(p + "agents_connected", "Agent streams open now.", registry=r)
        self.agent_last_seen = Gauge(p + "agent_last_seen_timestamp_seconds", "When each agent last sent.",
                                     ["host"], registry=r)
        self.storage_bytes = Gauge(p + "storage_bytes", "Size of the event store on disk.", registry=r)
        self.storage_up = Gauge(p + "storage_up", "1 while the event store answers, 0 while it does not "
                                "(a PostgreSQL store's database down: batches are not acknowledged).", registry=r)
        self.purged = Counter(p + "events_purged", "Events deleted by retention.", ["tier"], registry=r)
        self.forward_events = Counter(p + "forward_events", "Events delivered by each forwarder.",
                                      ["forwarder"], registry=r)
        self.forward_lag = Gauge(p + "forward_lag_events", "Stored events a forwarder has not delivered.",
                                 ["forwarder"], registry=r)
        self.forward_errors = Counter(p + "forward_errors", "Forwarder delivery failures.", ["forwarder"],
                                      registry=r)
        self.checkpoints = Counter(p + "checkpoints", "Signed checkpoints written.", registry=r)
        self.clock_skew = Gauge(p + "agent_clock_skew_seconds", "Agent clock minus collector clock.",
                                ["host"], registry=r)
