"""The PostgreSQL connection string of `[storage]`: parsed, masked for display, read from
`dsn_file`, and probed for `--check-config`; and `one_row` and `scalar`, the queries of one row
that every pg module runs.

libpq does the parsing (URI or `key=value` form), so everything libpq accepts works, including
`sslmode`, `sslrootcert` and a password from `PGPASSFILE` — a password never has to stand in
collector.toml.
"""

from __future__ import annotations

import pathlib
from collections.abc import Sequence
from typing import Any

from fleetlog.common.errors import StorageError, the_extra

try:
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo
except ImportError:   # an install without the 'postgresql' extra: the config check says so in one line
    psycopg = None  # type: ignore[assignment]

NO_PSYCOPG = f"needs {the_extra('postgresql', 'psycopg')}"

MASK = "***"
CONNECT_TIMEOUT = 5   # seconds; libpq's own default waits forever for an unanswered SYN


def parse_dsn(text: str) -> str:
    """Check the connection string's syntax (ValueError with libpq's reason), return it as given."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("expected a PostgreSQL connection string, e.g. \"postgresql://fleetlog@db:5432/fleetlog\"")
    if psycopg is None:
        raise ValueError(NO_PSYCOPG)
    try:
        conninfo_to_dict(text)
    except psycopg.Error as exc:
        raise ValueError(f"not a valid PostgreSQL connection string: {_first_line(exc)}") from None
    return text.strip()


def mask_dsn(text: str) -> str:
    """The connection string with its password (if any) replaced, for --check-config and logs."""
    if psycopg is None:
        return MASK
    try:
        params = conninfo_to_dict(text)
    except psycopg.Error:
        return MASK
    if "password" in params:
        params["password"] = MASK
    return make_conninfo("", **params)


def read_dsn_file(path: str) -> str:
    """The first non-empty line of `dsn_file`; OSError/ValueError with the reason."""
    text = pathlib.Path(path).read_text()
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            return parse_dsn(line)
    raise ValueError("the file holds no connection string")


def probe(dsn: str) -> None:
    """Connect once and ask the server its version; StorageError with one line when it cannot."""
    try:
        with psycopg.connect(dsn, connect_timeout=CONNECT_TIMEOUT, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        raise StorageError(f"cannot reach the database at {mask_dsn(dsn)}: {_first_line(exc)}") from None


def one_row(conn: psycopg.Connection, query: str, params: Sequence[Any] | None = None) -> tuple[Any, ...]:
    """The row of a query that always returns one (an aggregate, a function call, a chain's row)."""
    row = conn.execute(query, params).fetchone()
    if row is None:
        raise StorageError(f"the database returned no row for: {query}")
    return row


def scalar(conn: psycopg.Connection, query: str, params: Sequence[Any] | None = None) -> Any:
    """The first value of `one_row`."""
    return one_row(conn, query, params)[0]


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
