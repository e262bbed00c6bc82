"""Forwarding stored events to SIEMs and other destinations (contract §4.8).

One module per forwarder type holds its config (registered below under its `type` key) and its
sink; `forwarding.Forwarding` runs one `ForwarderRunner` per configured forwarder and swaps them
on reload. This package's import stays light: collector.config reads ForwarderConfig from it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fleetlog.collector.forward.base import Sink
from fleetlog.collector.forward.console import ConsoleForwarderConfig, ConsoleSink
from fleetlog.collector.forward.file import FileForwarderConfig, FileSink
from fleetlog.collector.forward.jsonl import JsonlForwarderConfig, JsonlSink
from fleetlog.collector.forward.syslog import SyslogForwarderConfig, SyslogSink

ForwarderConfig = SyslogForwarderConfig | JsonlForwarderConfig | FileForwarderConfig | ConsoleForwarderConfig

SINKS: dict[type, Callable[[Any], Sink]] = {
    SyslogForwarderConfig: SyslogSink,
    JsonlForwarderConfig: JsonlSink,
    FileForwarderConfig: FileSink,
    ConsoleForwarderConfig: ConsoleSink,
}


def build_sink(config: ForwarderConfig) -> Sink:
    return SINKS[type(config)](config)
