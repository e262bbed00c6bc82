"""What every fleetlog daemon exposes beside its own metrics: the process collector of the
Prometheus client (memory, CPU, open descriptors, start time — the first things an operator
graphs for a daemon that runs beside the applications) and `fleetlog_build_info`.

`fleetlog_build_info{daemon, version}` is always 1. Its `daemon` label lets dashboards and rules
tell the agent's process metrics from the collector's whatever the scrape jobs are called:
`process_resident_memory_bytes * on(job, instance) group_left(daemon) fleetlog_build_info`.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge, ProcessCollector

from fleetlog.common import __version__


def register_standard(registry: CollectorRegistry, daemon: str) -> None:
    """Add the process metrics and the build info of `daemon` ("agent" or "collector")."""
    ProcessCollector(registry=registry)
    info = Gauge("fleetlog_build_info", "Always 1: the fleetlog version and which daemon this is.",
                 ["daemon", "version"], registry=registry)
    info.labels(daemon, __version__).set(1)
