"""agent.toml (contract §2): the agent-wide sections. Each source type's config lives in its module
under agent.sources, registered there by its `type` key; the sections both daemons use
(metrics, TLS) come from common."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Literal

from fleetlog.agent.sources import SourceConfig
from fleetlog.common.config import Duration, FieldError, LevelName, Size, load_config
from fleetlog.common.http_health import MetricsConfig
from fleetlog.common.levels import Level
from fleetlog.common.tls import TlsFiles


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
class AgentConfig:
    node_name: str = field(default_factory=socket.gethostname)
    namespace: str = "default"
    state_dir: str = "/var/lib/fleetlog-agent"
    collectors: tuple[str, ...] = ("127.0.0.1:7433",)
    token_file: str | None = None
    tls: TlsFiles | None = None
    spool: SpoolConfig = SpoolConfig()
    batch: BatchConfig = BatchConfig()
    metrics: MetricsConfig = MetricsConfig(listen="127.0.0.1:9434")
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
