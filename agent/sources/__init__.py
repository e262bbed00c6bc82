"""Agent sources, registered by config type: adding a source is one module holding its config
class and its source, plus its line in SourceConfig and SOURCES here. Receivers (sources that
listen for senders running no agent) are in RECEIVERS: they also get the receiver metrics."""

from __future__ import annotations

import pathlib
from collections.abc import Callable

from fleetlog.agent.metrics import ReceiverMetrics
from fleetlog.agent.sources.base import Source
from fleetlog.agent.sources.file import FileSource, FileSourceConfig
from fleetlog.agent.sources.journal_upload import JournalUploadSource, JournalUploadSourceConfig
from fleetlog.agent.sources.journald import JournaldSource, JournaldSourceConfig
from fleetlog.agent.sources.otlp import OtlpSource, OtlpSourceConfig
from fleetlog.agent.sources.syslog import SyslogSource, SyslogSourceConfig

SourceConfig = (FileSourceConfig | JournaldSourceConfig | SyslogSourceConfig | OtlpSourceConfig
                | JournalUploadSourceConfig)

SOURCES: dict[type, Callable[..., Source]] = {FileSourceConfig: FileSource, JournaldSourceConfig: JournaldSource}

RECEIVERS: dict[type, Callable[..., Source]] = {SyslogSourceConfig: SyslogSource,
                                                 JournalUploadSourceConfig: JournalUploadSource}


def build_source(config: SourceConfig, state_dir: pathlib.Path, on_read: Callable[[str, int], None],
                 receiver_metrics: ReceiverMetrics | None = None,
                 spool_room: Callable[[int], bool] | None = None) -> Source:
    if isinstance(config, OtlpSourceConfig):
        # It answers its senders, so it asks first whether the spool has room for a request.
        return OtlpSource(config, state_dir, on_read, receiver_metrics, spool_room)
    receiver = RECEIVERS.get(type(config))
    if receiver is not None:
        return receiver(config, state_dir, on_read, receiver_metrics)
    return SOURCES[type(config)](config, state_dir, on_read)
