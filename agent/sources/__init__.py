"""Agent sources, registered by config type: adding a source is a config class in agent.config
plus one builder here."""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from typing import Any

from fleetlog.agent.config import FileSourceConfig, SourceConfig
from fleetlog.agent.sources.base import Source


def _build_file(config: FileSourceConfig, state_dir: pathlib.Path, on_read: Callable[[str, int], None]) -> Source:
    from fleetlog.agent.sources.file import FileSource
    return FileSource(config, state_dir, on_read)


def _build_journald(config: Any, state_dir: pathlib.Path, on_read: Callable[[str, int], None]) -> Source:
    from fleetlog.agent.sources.journald import JournaldSource
    return JournaldSource(config, state_dir, on_read)


BUILDERS: dict[str, Callable[..., Source]] = {"file": _build_file, "journald": _build_journald}


def build_source(config: SourceConfig, state_dir: pathlib.Path, on_read: Callable[[str, int], None]) -> Source:
    return BUILDERS[config.type](config, state_dir, on_read)
