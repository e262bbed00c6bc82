"""The agent's Prometheus metrics (contract §4.9)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from fleetlog.common.metrics import register_standard

DROP_REASONS = ("spool_full", "filtered", "collector_threshold")
# Receivers (syslog, ...): why a connection was ended or a datagram dropped, why a kept frame was malformed.
# OTLP adds requests refused (spool_full and bodies that are not requests), and records rejected as
# partial success (RECEIVER_REJECTS: the sender was told, and does not send them again).
RECEIVER_REFUSALS = ("too_many_connections", "tls_handshake", "idle_timeout", "bad_octet_count", "spool_full", "busy",
                     "bad_protobuf", "bad_json", "unsupported_media_type", "too_large", "bad_encoding")
RECEIVER_DROPS = ("queue_full",)
RECEIVER_REJECTS = ("too_many_records", "fields_too_long", "empty")
RECEIVER_MALFORMED = ("empty", "no_priority", "bad_priority", "bad_timestamp", "bad_structured_data", "too_long",
                      "cut_frame", "bad_trace_id")


class ReceiverMetrics:
    """The receiver sources' counters, by listener (the source's name) and reason."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry or CollectorRegistry()
        p = "fleetlog_agent_receiver_"
        self.received = Counter(p + "events_received", "Messages received, by listener.", ["listener"], registry=r)
        self.refused = Counter(p + "refused", "Connections refused or closed by the receiver, by listener and reason.",
                               ["listener", "reason"], registry=r)
        self.dropped = Counter(p + "events_dropped", "Messages dropped (UDP while the queue is full), by listener "
                               "and reason.", ["listener", "reason"], registry=r)
        self.malformed = Counter(p + "malformed", "Messages kept despite a malformed header or frame, by listener "
                                 "and reason.", ["listener", "reason"], registry=r)
        self.rejected = Counter(p + "events_rejected", "Records refused in an answer that says so (OTLP partial "
                                "success), by listener and reason.", ["listener", "reason"], registry=r)
        self.connections = Gauge(p + "connections", "Open connections, by listener.", ["listener"], registry=r)
        # Not "dropped": nothing is lost, the relay already had them (journal-upload retries).
        self.duplicates = Counter(p + "events_duplicate", "Entries sent again that the relay already had (skipped), "
                                  "by listener.", ["listener"], registry=r)

    def listener(self, name: str, refusals: tuple[str, ...] = RECEIVER_REFUSALS, drops: tuple[str, ...] = RECEIVER_DROPS,
                 malformed: tuple[str, ...] = RECEIVER_MALFORMED) -> None:
        """Every series of a listener at 0 from its start (see DROP_REASONS); the reasons are the
        syslog receiver's unless a receiver names its own."""
        self.received.labels(name)
        self.connections.labels(name)
        self.duplicates.labels(name)
        for reason in refusals:
            self.refused.labels(name, reason)
        for reason in drops:
            self.dropped.labels(name, reason)
        for reason in RECEIVER_REJECTS:
            self.rejected.labels(name, reason)
        for reason in malformed:
            self.malformed.labels(name, reason)


class AgentMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        p = "fleetlog_agent_"
        self.read = Counter(p + "events_read", "Events read from sources.", ["source"], registry=r)
        self.acked = Counter(p + "events_acked", "Events the collector acknowledged.", registry=r)
        self.dropped = Counter(p + "events_dropped", "Events dropped, by reason.", ["reason"], registry=r)
        self.spool_events = Gauge(p + "spool_events", "Events waiting for acknowledgement.", registry=r)
        self.spool_bytes = Gauge(p + "spool_bytes", "Bytes waiting for acknowledgement.", registry=r)
        self.send_errors = Counter(p + "send_errors", "Failed sends and broken streams.", registry=r)
        self.ack_latency = Histogram(p + "ack_latency_seconds", "Time from sending a batch to its ack.",
                                     registry=r, buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.connected = Gauge(p + "connected", "1 while a collector stream is open.", registry=r)
        self.source_lag = Gauge(p + "source_lag_bytes", "File size minus checkpoint.", ["source"], registry=r)
        # Beside spool_bytes, so an alert can say "80 % full" without copying the config into the rule.
        self.spool_max_bytes = Gauge(p + "spool_max_bytes", "spool.max_bytes as configured.", registry=r)
        # Every reason from the start, at 0: a series that first appears at 1 is invisible to
        # increase() and rate(), so the first events dropped would raise no alert.
        for reason in DROP_REASONS:
            self.dropped.labels(reason)
        self.receivers = ReceiverMetrics(r)
        register_standard(r, "agent")
