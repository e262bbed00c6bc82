"""`fleetlog-agent --config agent.toml [--check-config]`."""

from __future__ import annotations

import sys

from fleetlog.common.daemon import run_daemon


def _make_app(config):
    from fleetlog.agent.app import AgentApp
    return AgentApp(config)


def main(argv: list[str] | None = None) -> int:
    from fleetlog.agent.config import load_agent_config
    return run_daemon("fleetlog-agent", "The fleetlog agent: tails logs and ships them to a collector.",
                      load_agent_config, _make_app, argv)


if __name__ == "__main__":
    sys.exit(main())
