"""The web console (contract §8): pages and a JSON API served by the collector itself.

Views (pages.py, api.py), templates/ and static/ live side by side; queries.py is the one bridge
to the collector's query engine, downloads.py writes with the CLI's export code (common/export/).
"""

from fleetlog.collector.web.server import WebConsole

__all__ = ["WebConsole"]
