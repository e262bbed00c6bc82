"""Agent sources, registered by config type: adding a source is one module holding its config
class and its source, plus its line in SourceConfig and SOURCES here."""

from __future__ import annotations

import pathlib
from collections.abc import Callable

from fleetlog.agent.sources.base import Source
from fleetlog.agent.sources.file import FileSource, FileSourceConfig
from fleetlog.agent.sources.journald import JournaldSource, JournaldSourceConfig

SourceConfig = FileSourceConfig | JournaldSourceConfig

SOURCES: dict[type, Callable[..., Source]] = {FileSourceConfig: FileSource, JournaldSourceConfig: JournaldSource}


def build_source(config: SourceConfig, state_dir: pathlib.Path, on_read: Callable[[str, int], None]) -> Source:
    return SOURCES[type(config)](config, state_dir, on_read)
