"""The types of _chain_native.c, the hash chain's per-batch step (used by chain.py)."""

from typing import Any

def link_rows(head: bytes, rows: list[list[Any]], keys: tuple[str, ...], columns: tuple[int, ...],
              link_column: int, /) -> bytes: ...
def link_columns(head: bytes, table: list[list[Any]], keys: tuple[str, ...], columns: tuple[int, ...],
                 link_column: int, /) -> bytes: ...
