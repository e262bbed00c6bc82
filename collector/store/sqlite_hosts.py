"""Host filters on the main file: a host filter (names or addresses, `*` wildcards) resolved to
the origin ids it covers, through the small `origins` and `node_addresses` tables, before any
partition is read (docs/storage-model.md §5)."""

from __future__ import annotations

import re
from typing import Any

from fleetlog.collector.filters import TextMatch


def _glob(pattern: str) -> str:
    """Our `*` wildcard as an SQLite GLOB pattern (other GLOB metacharacters made literal)."""
    return re.sub(r"([?\[])", r"[\1]", pattern)


def text_condition(column: str, match: TextMatch, params: list[Any]) -> str:
    """`column` equal to one of the exact values or matching one of the `*` patterns (GLOB)."""
    parts = []
    if match.exact:
        parts.append(f"{column} IN ({','.join('?' * len(match.exact))})")
        params.extend(match.exact)
    for pattern in match.wildcards:
        parts.append(f"{column} GLOB ?")
        params.append(_glob(pattern))
    return "(" + " OR ".join(parts) + ")"


def host_origins_sql(host: TextMatch) -> tuple[str, list[Any]]:
    """SQL selecting the origin ids of a host filter (names or addresses), on the main file."""
    params: list[Any] = []
    by_name = text_condition("host", host, params)
    by_ip = text_condition("ip", host, params)
    return (f"SELECT id FROM origins WHERE {by_name} OR host IN (SELECT host FROM node_addresses WHERE {by_ip})",
            params)
