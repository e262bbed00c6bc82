"""Which optional parts of the install a collector's configuration needs.

The base install is an agent node's; the collector and each of its optional parts come as extras
(pyproject.toml). A collector started without one gets a one-line error naming the pip command,
at start and with --check-config, instead of an ImportError from deep inside a start step.
"""

from __future__ import annotations

import importlib.util

from fleetlog.collector.config import CollectorConfig
from fleetlog.common.errors import ConfigError, the_extra

# (what needs it, the import names it uses, the extra that brings them)
_COLLECTOR = ("the collector", ("grpc_health", "cryptography", "re2"), "collector")
_POSTGRESQL = ('storage.backend = "postgresql"', ("psycopg",), "postgresql")
_CONSOLE = ("[web] (the console)", ("aiohttp", "jinja2"), "console")


def needed_extras(config: CollectorConfig) -> list[tuple[str, tuple[str, ...], str]]:
    needed: list[tuple[str, tuple[str, ...], str]] = [_COLLECTOR]
    if config.storage.backend == "postgresql":
        needed.append(_POSTGRESQL)
    if config.web is not None:
        needed.append(_CONSOLE)
    return needed


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require_extras(config: CollectorConfig) -> None:
    """Raise ConfigError naming the first part of the configuration whose packages are missing."""
    for what, modules, extra in needed_extras(config):
        missing = [m for m in modules if not _installed(m)]
        if missing:
            raise ConfigError(f"{what} needs {the_extra(extra, ', '.join(missing))}")
