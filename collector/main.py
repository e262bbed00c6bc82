"""`fleetlog-collector --config collector.toml [--check-config]`."""

from __future__ import annotations

import sys

from fleetlog.common.daemon import run_daemon


def _make_app(config):
    from fleetlog.collector.app import CollectorApp
    return CollectorApp(config)


def main(argv: list[str] | None = None) -> int:
    from fleetlog.collector.config import load_collector_config
    return run_daemon("fleetlog-collector", "The fleetlog collector: stores, signs, forwards and serves events.",
                      load_collector_config, _make_app, argv)


if __name__ == "__main__":
    sys.exit(main())
