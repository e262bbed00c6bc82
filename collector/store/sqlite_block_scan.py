"""Which blocks of a partition a search must open (docs/storage-model.md §6).

Two sieves, each only ever keeping too many blocks, never too few (the rows of the blocks kept
are then matched exactly, row_match.row_predicate):
1. SQL on the skip columns of `blocks`: time and seq bounds, stream (namespace, host), the most
   severe level, so most blocks are never even listed;
2. row_match.block_may_match on each listed header: its summary of distinct values and its bloom
   filter of message words, read in the same statement.
An exact request id or user is looked up first, in the small filters of `block_keys`: only the
blocks they may be in are listed at all.
"""

from __future__ import annotations

import bisect
import functools
import re
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from fleetlog.collector.filters import FilterSpec
from fleetlog.collector.store.block_columns import BlockColumns
from fleetlog.collector.store.blocks import tokens
from fleetlog.collector.store.regex_literal import required_literal
from fleetlog.collector.store.row_match import block_may_match, key_lookups, keys_may_match
from fleetlog.collector.store.sqlite_blocks import HEADER_COLUMNS, BlockHeader, has_block_keys, stored_filter


def time_bounds(spec: FilterSpec) -> tuple[int | None, int | None]:
    """(lowest, highest) event time the spec can match, inclusive; None = unbounded."""
    lows = [spec.since_us]
    highs = [spec.until_us]
    if spec.date_range is not None:
        lows.append(spec.date_range[0])
        highs.append(spec.date_range[1] - 1)
    if spec.after_key is not None:
        lows.append(spec.after_key[0])
    if spec.before_key is not None:
        highs.append(spec.before_key[0])
    low = max((v for v in lows if v is not None), default=None)
    high = min((v for v in highs if v is not None), default=None)
    return low, high


@dataclass
class BlockSelection:
    """What a spec asks of a block before it is opened: SQL on its skip columns, then
    row_match.block_may_match on its summary and bloom."""

    spec: FilterSpec
    where: str
    params: list[Any]
    hosts: set[str] | None = None
    nothing: bool = False       # no block can match (an empty scope or no such host)

    def headers(self, conn: sqlite3.Connection, head: int,
                extra: str = "", extra_params: Iterable[Any] = ()) -> list[BlockHeader]:
        """The partition's blocks that may hold matching rows up to seq `head`."""
        if self.nothing:
            return []
        spec = self.spec
        requests, users = key_lookups(spec)
        keyed = (requests is not None or users is not None) and has_block_keys(conn)
        where, params = self.where, self.params
        if keyed:
            # An exact request id or user: the small filters of block_keys first, and only the
            # blocks they may be in are listed (a store of 10^4 blocks holds a request in 1-2).
            ids = _keyed_blocks(conn, spec, requests is not None, users is not None)
            if not ids:
                return []
            where = f"id IN ({','.join(map(str, ids))}) AND {where}"
        # The word filter is read only for a filter that looks in it (it is most of a header's
        # bytes); a file without block_keys has request ids and users in it too.
        words = spec.keywords or spec.phrases or (not keyed and (spec.request_id or spec.user))
        bloom = ", bloom" if words else ", NULL"
        sql = f"SELECT {', '.join(HEADER_COLUMNS)}{bloom} FROM blocks WHERE min_seq <= ? AND {where}{extra}"
        found = []
        for row in conn.execute(sql, [head, *params, *extra_params]):
            header = BlockHeader(*row[:-1])
            if block_may_match(spec, header, self.hosts, functools.partial(stored_filter, row[-1]), keys_checked=keyed):
                found.append(header)
        return found


def _keyed_blocks(conn: sqlite3.Connection, spec: FilterSpec, requests: bool, users: bool) -> list[int]:
    """The blocks whose request-id and user filters may hold what `spec` asks for (ascending ids:
    integers, put into the SQL of the listing as they are)."""
    columns = ", ".join(name for name, wanted in (("requests", requests), ("users", users)) if wanted)
    found = []
    for block, *filters in conn.execute(f"SELECT block, {columns} FROM block_keys"):
        if keys_may_match(spec, stored_filter(filters[0]) if requests else None, stored_filter(filters[-1]) if users else None):
            found.append(int(block))
    return found


def select_blocks(spec: FilterSpec, hosts: list[str] | None) -> BlockSelection:
    """The sieves for `spec`; `hosts`: the host filter resolved on the main file (names of the
    origins it matches), None without a host filter."""
    if spec.allowed_namespaces == () or hosts == []:
        return BlockSelection(spec, "0", [], nothing=True)
    clauses: list[str] = []
    params: list[Any] = []
    if spec.allowed_namespaces is not None:
        clauses.append(f"namespace IN ({','.join('?' * len(spec.allowed_namespaces))})")
        params.extend(spec.allowed_namespaces)
    if hosts is not None:
        clauses.append(f"host IN ({','.join('?' * len(hosts))})")
        params.extend(hosts)
    low, high = time_bounds(spec)
    if low is not None:
        clauses.append("max_time >= ?")
        params.append(low)
    if high is not None:
        clauses.append("min_time <= ?")
        params.append(high)
    worst = [level for level in (spec.max_level, max(spec.levels, default=None)) if level is not None]
    if worst:
        clauses.append("min_level <= ?")
        params.append(min(worst))
    return BlockSelection(spec, " AND ".join(clauses) or "1", params, None if hosts is None else set(hosts))


# -- inside a block -------------------------------------------------------------------------------

Sieve = Callable[[BlockColumns, BlockHeader], "list[int] | None"]


def event_sieve(spec: FilterSpec | None, seqs: tuple[int, int] | None = None, limit: int = 0) -> Sieve:
    """The events of an opened block that may match `spec` (None: all of them), found from the
    columns it filters on, most selective first, before any row is built: exact request ids and
    users, the longest word of the message terms and the text a regex requires
    (regex_literal.py), by a substring search of the column's text; then the time and level
    bounds. A necessary condition only: row_predicate decides.
    `seqs` (low, high]: first, the events in that seq window (follow), at most `limit` of them
    when there is no spec (a forwarder's next 1,000 of a block of 8,192)."""
    steps: list[Callable[[BlockColumns, BlockHeader, list[int] | None], list[int] | None]] = []
    if seqs is not None:
        steps.append(functools.partial(_seq_window, low=seqs[0], high=seqs[1], limit=0 if spec else limit))
    if spec is None:
        spec = FilterSpec()
    for name in ("request_id", "user"):
        match = getattr(spec, name)
        if match is not None and match.exact and not match.wildcards:
            steps.append(functools.partial(_containing, name=name, needles=list(match.exact), folded=False,
                                           whole=True))
    words = [w for term in (*(k.rstrip("*") for k in spec.keywords), *spec.phrases) for w in tokens(term)]
    if words:
        steps.append(functools.partial(_containing, name="message", needles=[max(words, key=len)], folded=True,
                                       whole=False))
    # A keyword that is not all word characters (`abc-123`), and a phrase, occur literally too,
    # compared as LIKE does (ASCII letters in either case): their lowered text is in the lowered
    # message.
    literals = [k.rstrip("*") for k in spec.keywords if not re.fullmatch(r"\w+", k.rstrip("*"))] + list(spec.phrases)
    if literals:
        steps.append(functools.partial(_containing, name="message", needles=[max(literals, key=len).lower()],
                                       folded=False, whole=False, lowered=True))
    literal = required_literal(spec.message_regex) if spec.message_regex else None
    if literal is not None:     # what every match of the regex holds, found before RE2 runs
        steps.append(functools.partial(_containing, name="message", needles=[literal], folded=False, whole=False))
    low, high = time_bounds(spec)
    if low is not None or high is not None:
        steps.append(functools.partial(_within, low=_NEVER if low is None else low, high=-_NEVER if high is None else high))
    worst = [level for level in (spec.max_level, max(spec.levels, default=None)) if level is not None]
    if worst:
        levels = frozenset(spec.levels) if spec.levels else None
        steps.append(functools.partial(_of_levels, worst=min(worst), levels=levels))

    def sieve(block: BlockColumns, header: BlockHeader) -> list[int] | None:
        among: list[int] | None = None
        for step in steps:
            among = step(block, header, among)
            if among is not None and not among:
                break
        return among
    return sieve


_NEVER = -(1 << 63)


def _seq_window(block: BlockColumns, header: BlockHeader, among: list[int] | None, *, low: int, high: int,
                limit: int) -> list[int] | None:
    """A block's seqs ascend: the events in (low, high] are one slice of it."""
    if low < header.min_seq and header.max_seq <= high and not (limit and header.count > limit):
        return among
    seqs = block.column("seq")
    start, end = bisect.bisect_right(seqs, low), bisect.bisect_right(seqs, high)
    if limit:
        end = min(end, start + limit)
    return list(range(start, end))


def _containing(block: BlockColumns, header: BlockHeader, among: list[int] | None, *, name: str,
                needles: list[str], folded: bool, whole: bool, lowered: bool = False) -> list[int]:
    return block.containing(name, needles, folded, whole, among, lowered)


def _within(block: BlockColumns, header: BlockHeader, among: list[int] | None, *, low: int, high: int) -> list[int] | None:
    if low <= header.min_time and header.max_time <= high:
        return among
    return block.where("time", lambda t: low <= t <= high, among)


def _of_levels(block: BlockColumns, header: BlockHeader, among: list[int] | None, *, worst: int,
               levels: frozenset[int] | None) -> list[int]:
    return block.where("level", lambda lv: lv <= worst and (levels is None or lv in levels), among)
