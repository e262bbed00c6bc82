"""`fleetlog-collector --config collector.toml [--check-config]`."""

from __future__ import annotations

import sys

from fleetlog.common.daemon import run_daemon


def _make_app(config):
    from fleetlog.collector.app import CollectorApp
    return CollectorApp(config)


def _load_config(path: str):
    from fleetlog.collector.config import load_collector_config
    from fleetlog.collector.extras import require_extras
    config = load_collector_config(path)
    require_extras(config)
    return config


def main(argv: list[str] | None = None) -> int:
    return run_daemon("fleetlog-collector", "The fleetlog collector: stores, signs, forwards and serves events.",
                      _load_config, _make_app, argv)


if __name__ == "__main__":
    sys.exit(main())
