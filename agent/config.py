"""agent.toml (SPEC §2). Sources are registered by their `type` key: adding a source type means
adding its config dataclass to `SourceConfig` and its builder to agent.sources.BUILDERS."""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass, field
from typing import Literal

from fleetlog.common.config import Duration, FieldError, LevelName, Size, load_config
from fleetlog.common.levels import Level


@dataclass(frozen=True)
class TlsConfig:
    ca: str | None = None
    cert: str | None = None
    key: str | None = None


@dataclass(frozen=True)
class SpoolConfig:
    max_bytes: Size = 256 * 1024 * 1024
    when_full: Literal["block", "drop_oldest"] = "block"


@dataclass(frozen=True)
class BatchConfig:
    max_events: int = 5000
    max_bytes: Size = 1024 * 1024
    max_wait: Duration = 0.2
    compression: Literal["gzip", "none", "zstd"] = "gzip"

    def validate(self) -> None:
        if self.max_events < 1:
            raise FieldError("max_events", "must be at least 1")


@dataclass(frozen=True)
class MetricsConfig:
    listen: str = "127.0.0.1:9434"


@dataclass(frozen=True)
class FieldPattern:
    """A filter on one event field: `{ field = "user", pattern = "admin*" }`."""

    field: str
    pattern: str


@dataclass(frozen=True)
class MultilineConfig:
    start_pattern: str
    max_wait: Duration = 1.0

    def validate(self) -> None:
        _check_regex("start_pattern", self.start_pattern)


def _check_regex(key: str, pattern: str) -> None:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise FieldError(key, f"invalid regular expression: {exc}") from None


@dataclass(frozen=True)
class FileSourceConfig:
    type: Literal["file"]
    paths: tuple[str, ...]
    name: str = ""                      # checkpoint folder name; default: derived from paths
    # Path globs (strings) and event filters (`{ field, pattern }` tables) share this key.
    exclude: tuple[str | FieldPattern, ...] = ()
    start_at: Literal["beginning", "end"] = "beginning"
    log_type: str = "application"
    app: str = ""
    parser: Literal["auto", "json", "regex", "plain"] = "auto"
    pattern: str = ""
    multiline: MultilineConfig | None = None
    max_line_bytes: Size = 64 * 1024
    fingerprint_bytes: int = 256
    ignored_header_bytes: int = 0
    min_level: LevelName = Level.DEBUG
    include: tuple[FieldPattern, ...] = ()

    @property
    def exclude_paths(self) -> tuple[str, ...]:
        return tuple(e for e in self.exclude if isinstance(e, str))

    @property
    def exclude_events(self) -> tuple[FieldPattern, ...]:
        return tuple(e for e in self.exclude if isinstance(e, FieldPattern))

    def validate(self) -> None:
        if not self.paths:
            raise FieldError("paths", "needs at least one path or glob")
        if self.parser == "regex":
            if not self.pattern:
                raise FieldError("pattern", 'required when parser = "regex"')
            _check_regex("pattern", self.pattern)
        if self.max_line_bytes < 16:
            raise FieldError("max_line_bytes", "must be at least 16 bytes")
        if self.fingerprint_bytes < 1:
            raise FieldError("fingerprint_bytes", "must be at least 1")


@dataclass(frozen=True)
class JournaldSourceConfig:
    type: Literal["journald"]
    name: str = ""
    units: tuple[str, ...] = ()
    journal_dir: str = ""
    log_type: str = "system"
    min_level: LevelName = Level.DEBUG
    include: tuple[FieldPattern, ...] = ()
    exclude: tuple[FieldPattern, ...] = ()
    start_at: Literal["beginning", "end"] = "beginning"


SourceConfig = FileSourceConfig | JournaldSourceConfig


@dataclass(frozen=True)
class AgentConfig:
    node_name: str = field(default_factory=socket.gethostname)
    namespace: str = "default"
    state_dir: str = "/var/lib/fleetlog-agent"
    collectors: tuple[str, ...] = ("127.0.0.1:7433",)
    token_file: str | None = None
    tls: TlsConfig | None = None
    spool: SpoolConfig = SpoolConfig()
    batch: BatchConfig = BatchConfig()
    metrics: MetricsConfig = MetricsConfig()
    sources: tuple[SourceConfig, ...] = ()
    log_level: LevelName = Level.INFO
    log_file: str | None = None
    log_format: Literal["text", "json"] = "text"
    log_rotate_daily: bool = False
    log_rotate_max: int = 7

    def validate(self) -> None:
        if not self.collectors:
            raise FieldError("collectors", "needs at least one HOST:PORT")
        for i, address in enumerate(self.collectors):
            if ":" not in address or not address.rsplit(":", 1)[1].isdigit():
                raise FieldError(f"collectors[{i}]", f"expected HOST:PORT, got {address!r}")
        if not self.node_name:
            raise FieldError("node_name", "must not be empty")


def load_agent_config(path: str) -> AgentConfig:
    return load_config(AgentConfig, path)
