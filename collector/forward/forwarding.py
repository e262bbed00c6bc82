"""The collector's running forwarders, kept in step with the configured ones across reloads."""

from __future__ import annotations

import logging
from typing import Any

from fleetlog.collector.forward import build_sink
from fleetlog.collector.forward.base import Sink
from fleetlog.collector.forward.runner import ForwarderRunner, Recorder, stop_runners
from fleetlog.collector.metrics import CollectorMetrics
from fleetlog.collector.store import Backend

log = logging.getLogger("fleetlog.collector.forward")


class Forwarding:
    """The collector's forwarders: started with the collector, replaced on reload when their
    configuration changed (a renamed forwarder is a new one with its own cursor)."""

    def __init__(self, backend: Backend, metrics: CollectorMetrics, record: Recorder | None = None):
        self.backend, self.metrics, self.record = backend, metrics, record
        self.runners: dict[str, ForwarderRunner] = {}

    def start(self, configs: list[Any]) -> None:
        self.reload(configs)

    def reload(self, configs: list[Any]) -> None:
        """Build the sinks of every new or changed forwarder first (a bad one raises ConfigError
        and nothing changes), then stop what is gone or replaced (saving its cursor) and start
        the new ones from their cursors."""
        wanted = {c.name: c for c in configs}
        fresh = {name: config for name, config in wanted.items()
                 if name not in self.runners or self.runners[name].config != config}
        sinks: dict[str, Sink] = {}
        try:
            for name, config in fresh.items():
                sinks[name] = build_sink(config)
        except Exception:
            for sink in sinks.values():
                sink.close()
            raise
        for name in [n for n in self.runners if n not in wanted or n in fresh]:
            self.runners.pop(name).stop()
        for name, config in fresh.items():
            runner = ForwarderRunner(name, config, sinks[name], self.backend, self.metrics, self.record)
            self.runners[name] = runner
            runner.start()
            log.info("forwarder %s started: %s, after seq %s", name, runner.sink.target, runner.position())

    def wake(self) -> None:
        for runner in list(self.runners.values()):
            runner.wake.set()

    def stop(self) -> None:
        stop_runners(list(self.runners.values()))
        self.runners.clear()

    def status(self) -> list[tuple[str, str, int, str, float]]:
        """(name, state, lag, last error, its unix time) of each forwarder."""
        return [(name, r.state, r.lag, r.last_error, r.last_error_at) for name, r in sorted(self.runners.items())]
