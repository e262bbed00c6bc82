"""The types of _sqlite_native.c, the storage writer's batch insert (used by sqlite_bulk.py)."""

from typing import Any

class Error(Exception):
    """args: (message, SQLite's extended result code)."""

class Connection:
    def __init__(self, path: str, synchronous: str, busy_timeout_ms: int, cache_kib: int) -> None: ...
    def execute(self, sql: str, /) -> None: ...
    def insert(self, rows: list[list[Any]], insert_sql: str, fts_sql: str, seq_col: int, text_col: int, /) -> None: ...
    def close(self) -> None: ...

def library() -> tuple[str, str]:
    """(version, path) of the SQLite library the extension is linked to."""
