"""What is checked before the collector opens anything: that its listen address is safe for its
settings, and that its data_dir can be written."""

from __future__ import annotations

import pathlib

from fleetlog.collector.config import CollectorConfig
from fleetlog.common.errors import ConfigError, StorageError


def check_listen_policy(config: CollectorConfig) -> None:
    """contract §4.1: without TLS and tokens, listen on loopback only unless `insecure = true`.
    (Loading collector.toml checks the same; this guards configs built in code.)"""
    problem = config.listen_policy_problem()
    if problem:
        raise ConfigError(f"collector.toml: listen: {problem}")


def writable_data_dir(config: CollectorConfig) -> pathlib.Path:
    """data_dir, created if need be. One that cannot be written is said plainly at start (SQLite
    would say "unable to open database file"), before anything in it is touched."""
    folder = pathlib.Path(config.data_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"collector.toml: data_dir: cannot create {config.data_dir}: {exc.strerror}") from None
    probe = folder / ".fleetlog-write-probe"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise StorageError(f"collector.toml: data_dir: cannot write in {folder}: {exc.strerror}") from None
    return folder
