"""collector.toml (contract §2): the collector-wide sections. Each forwarder type's config lives in
its module under collector.forward, registered there by its `type` key; the sections both
daemons use (metrics, TLS) come from common."""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Annotated, Literal

from fleetlog.collector.alerting.rules import EVALUATOR_NAME, AlertingConfig
from fleetlog.collector.forward import ForwarderConfig
from fleetlog.common.config import Converter, Duration, FieldError, LevelName, Size, is_loopback, load_config
from fleetlog.common.http_health import MetricsConfig
from fleetlog.common.levels import Level
from fleetlog.common.tls import TlsFiles


@dataclass(frozen=True)
class ServerTlsConfig(TlsFiles):
    """The listener's `tls` table: the shared ca/cert/key section plus client certificates."""

    require_client_cert: bool = False

    def validate(self) -> None:
        if not (self.cert and self.key):
            raise FieldError("cert", "a listening collector needs both cert and key")
        if self.require_client_cert and not self.ca:
            raise FieldError("ca", "required when require_client_cert = true")


def _parse_dsn(value):
    from fleetlog.collector.store.pg_dsn import parse_dsn
    return parse_dsn(value)


def _mask_dsn(value):
    from fleetlog.collector.store.pg_dsn import mask_dsn
    return mask_dsn(value)


# A PostgreSQL connection string; --check-config prints it with the password masked.
Dsn = Annotated[str, Converter(_parse_dsn, _mask_dsn)]


# Two writer shards measured best on 2 cores (docs/benchmarks.md); one core gains nothing from a
# second partition thread and pays a second fsync per transaction.
DEFAULT_WRITER_SHARDS = min(2, os.cpu_count() or 1)


@dataclass(frozen=True)
class StorageConfig:
    backend: Literal["sqlite", "postgresql"] = "sqlite"
    path: str = "events.db"
    synchronous: Literal["full", "normal"] = "full"
    dsn: Dsn | None = None               # backend = "postgresql": libpq URI or key=value string
    dsn_file: str | None = None          # or a file holding it (read at start), so no password stands here
    # Events are stored in one partition per tier and period of event time; retention drops
    # whole partitions (docs/storage-model.md). Changing it applies to new partitions.
    partition_period: Duration = 86400.0
    # SQLite: the hot partition of each tier and period is split into this many files, written by
    # as many threads at once (one chain, one commit record; docs/storage-model.md §5). 2 measured
    # best on 2 cores, end to end and collector alone (docs/benchmarks.md); 1 suits one core.
    writer_shards: int | None = None     # unset: DEFAULT_WRITER_SHARDS (2; 1 on one core) with SQLite
    # A search, chart or follow read that works this long without producing its next page of
    # results is stopped with a "narrow it" error (SQLite: a progress handler; PostgreSQL:
    # statement_timeout), so no reader's query holds a worker thread and the store for long.
    query_timeout: Duration = 10.0

    def __post_init__(self) -> None:
        # The effective count, so --check-config shows what the store will use (PostgreSQL keeps
        # None: each collector of a cluster writes its own chain, and validate refuses the key).
        if self.writer_shards is None and self.backend == "sqlite":
            object.__setattr__(self, "writer_shards", DEFAULT_WRITER_SHARDS)

    def validate(self) -> None:
        if not 60 <= self.partition_period < math.inf:
            raise FieldError("partition_period", "must be a finite duration of at least 1m")
        if self.writer_shards is not None and not 1 <= self.writer_shards <= 16:
            raise FieldError("writer_shards", "must be between 1 and 16")
        if not 0.1 <= self.query_timeout <= 3600:
            raise FieldError("query_timeout", "must be between 100ms and 1h")
        if self.backend == "postgresql":
            if self.partition_period != 86400.0:
                raise FieldError("partition_period", 'PostgreSQL partitions by day: leave it at "1d"')
            if self.writer_shards is not None:
                raise FieldError("writer_shards", "only used with the SQLite store (each collector of a cluster "
                                 "writes its own chain)")
            if self.dsn and self.dsn_file:
                raise FieldError("dsn_file", "give dsn or dsn_file, not both")
            if not (self.dsn or self.dsn_file):
                raise FieldError("dsn", 'required with backend = "postgresql" (or dsn_file)')
            if self.dsn_file:
                self.resolved_dsn()
        else:
            for key in ("dsn", "dsn_file"):
                if getattr(self, key) is not None:
                    raise FieldError(key, 'only used with backend = "postgresql"')

    def resolved_dsn(self) -> str:
        """The connection string, from `dsn` or read from `dsn_file` (FieldError naming it)."""
        if self.dsn:
            return self.dsn
        from fleetlog.collector.store.pg_dsn import read_dsn_file
        try:
            return read_dsn_file(self.dsn_file or "")
        except OSError as exc:
            raise FieldError("dsn_file", f"cannot read {self.dsn_file}: {exc.strerror}") from None
        except ValueError as exc:
            raise FieldError("dsn_file", f"{self.dsn_file}: {exc}") from None


@dataclass(frozen=True)
class LevelsConfig:
    default: LevelName = Level.INFO
    namespaces: Mapping[str, LevelName] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class NamespaceRetention:
    general: Duration | None = None
    security: Duration | None = None


@dataclass(frozen=True)
class TierRule:
    """An event matching every given list (wildcards allowed) goes to `tier`."""

    tier: Literal["general", "security"]
    log_type: tuple[str, ...] = ()
    action: tuple[str, ...] = ()
    namespace: tuple[str, ...] = ()
    source: tuple[str, ...] = ()
    app: tuple[str, ...] = ()


DEFAULT_TIER_RULES = (
    TierRule(tier="security", log_type=("audit", "security")),
    TierRule(tier="security", action=("user.*", "login*", "password*", "mfa*")),
)


@dataclass(frozen=True)
class RetentionConfig:
    general: Duration = 90 * 86400.0
    security: Duration = 365 * 86400.0
    purge_interval: Duration = 3600.0
    namespaces: Mapping[str, NamespaceRetention] = field(default_factory=lambda: MappingProxyType({}))
    rules: tuple[TierRule, ...] = DEFAULT_TIER_RULES

    def validate(self) -> None:
        if self.purge_interval <= 0 or math.isinf(self.purge_interval):
            raise FieldError("purge_interval", "must be a positive, finite duration")


@dataclass(frozen=True)
class SigningConfig:
    key: str | None = None
    checkpoint_every: int = 1000
    checkpoint_interval: Duration = 10.0

    def validate(self) -> None:
        if self.checkpoint_every < 1:
            raise FieldError("checkpoint_every", "must be at least 1")


@dataclass(frozen=True)
class IngestConfig:
    """What one peer may make the collector hold (docs/hostile-input.md, "Limits on what peers send").

    The agents' batches must fit: an agent's batch is about its batch.max_bytes of lines plus
    one source read, and about twice that on the wire when lines carry key=value fields."""

    max_message_bytes: Size = 4 * 1024 * 1024       # one gRPC message, after gzip/zstd expansion
    max_batch_events: int = 50_000
    # Received, not yet committed, all agents. Room for the writer's transaction (it takes up to
    # 50,000 events a group) and the batches prepared meanwhile: at 20,000 the receiving side
    # waited for each commit (collector alone 4-15 % slower, peak RSS 28 MiB lower at 1M events).
    max_pending_events: int = 60_000
    max_pending_bytes: Size = 32 * 1024 * 1024
    max_streams_per_connection: int = 8
    # Event times a peer may set (collector/event_times.py): older or further ahead than these
    # get the time the batch was received; a batch may span this many partition periods
    # besides the current one (each new period is a new partition file or table).
    max_event_age: Duration = 10 * 365 * 86400.0
    max_future_skew: Duration = 3600.0
    max_batch_periods: int = 32

    def validate(self) -> None:
        if not 64 * 1024 <= self.max_message_bytes <= 1024 * 1024 * 1024:
            raise FieldError("max_message_bytes", "must be between 64KiB and 1GiB")
        if self.max_event_age < 86400:
            raise FieldError("max_event_age", "must be at least 1d (or \"indefinite\")")
        if not 0 <= self.max_future_skew <= 7 * 86400:
            raise FieldError("max_future_skew", "must be between 0s and 7d")
        for name in ("max_batch_events", "max_pending_events", "max_streams_per_connection", "max_batch_periods"):
            if getattr(self, name) < 1:
                raise FieldError(name, "must be at least 1")
        if self.max_pending_bytes < self.max_message_bytes:
            raise FieldError("max_pending_bytes", "must be at least max_message_bytes (one message must fit)")


@dataclass(frozen=True)
class WebConfig:
    """`[web]`: the console (contract §8). Absent section: no console."""

    listen: str = "127.0.0.1:8433"
    session_lifetime: Duration = 8 * 3600.0
    # Host names the console answers to besides its own (collector/web/hosts.py: DNS rebinding).
    allowed_hosts: tuple[str, ...] = ()
    # An export or bundle download is refused while data_dir has less free (its temporary files).
    export_min_free: Size = 512 * 1024 * 1024

    def validate(self) -> None:
        from fleetlog.collector.host_names import host_name_problem
        _host, sep, port = self.listen.rpartition(":")
        if not sep or not (port.isascii() and port.isdigit()):
            raise FieldError("listen", f"expected HOST:PORT, got {self.listen!r}")
        if not 60 <= self.session_lifetime <= 30 * 86400:
            raise FieldError("session_lifetime", "must be between 1m and 30d")
        for i, name in enumerate(self.allowed_hosts):
            problem = host_name_problem(name)
            if problem:
                raise FieldError(f"allowed_hosts[{i}]", problem)


@dataclass(frozen=True)
class CollectorConfig:
    node_name: str = field(default_factory=socket.gethostname)
    listen: str = "127.0.0.1:7433"
    data_dir: str = "/var/lib/fleetlog-collector"
    tls: ServerTlsConfig | None = None
    tokens_file: str | None = None
    insecure: bool = False
    storage: StorageConfig = StorageConfig()
    levels: LevelsConfig = LevelsConfig()
    retention: RetentionConfig = RetentionConfig()
    signing: SigningConfig = SigningConfig()
    metrics: MetricsConfig = MetricsConfig(listen="127.0.0.1:9433")
    ingest: IngestConfig = IngestConfig()
    forwarders: tuple[ForwarderConfig, ...] = ()
    web: WebConfig | None = None
    alerting: AlertingConfig = AlertingConfig()
    log_level: LevelName = Level.INFO
    log_file: str | None = None
    log_format: Literal["text", "json"] = "text"
    log_rotate_daily: bool = False
    log_rotate_max: int = 7

    def validate(self) -> None:
        _host, sep, port = self.listen.rpartition(":")
        if not sep or not (port.isascii() and port.isdigit()):
            raise FieldError("listen", f"expected HOST:PORT, got {self.listen!r}")
        problem = self.listen_policy_problem()
        if problem:
            raise FieldError("listen", problem)
        if self.web is not None and not (self.tls is not None or self.insecure
                                         or is_loopback(self.web.listen.rpartition(":")[0])):
            raise FieldError("web.listen", f"refusing to serve the console on {self.web.listen} without TLS "
                             "(tokens would cross the network in clear); use a loopback address, "
                             "configure tls, or set insecure = true")
        names = [f.name for f in self.forwarders]
        for i, name in enumerate(names):
            if names.index(name) != i:
                raise FieldError(f"forwarders[{i}].name", f"duplicate forwarder name {name!r}")
            if name == EVALUATOR_NAME:
                raise FieldError(f"forwarders[{i}].name", f"{name!r} is the alert evaluator's cursor name")

    def check_reachable(self) -> None:
        """For --check-config: StorageError (one line) when the PostgreSQL store cannot be reached."""
        if self.storage.backend != "postgresql":
            return
        from fleetlog.collector.store.pg_dsn import probe
        from fleetlog.common.errors import StorageError
        try:
            probe(self.storage.resolved_dsn())
        except StorageError as exc:
            raise StorageError(f"storage.dsn: {exc}") from None

    def listen_policy_problem(self) -> str | None:
        """contract §4.1: without TLS and tokens, listen on loopback only unless `insecure = true`."""
        if self.tls is not None or self.tokens_file or self.insecure or is_loopback(self.listen_host):
            return None
        return (f"refusing to listen on {self.listen} without TLS or tokens_file; "
                "use a loopback address, configure tls/tokens_file, or set insecure = true")

    @property
    def listen_host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    def namespace_level(self, namespace: str) -> Level:
        return self.levels.namespaces.get(namespace, self.levels.default)




def load_collector_config(path: str) -> CollectorConfig:
    return load_config(CollectorConfig, path)
