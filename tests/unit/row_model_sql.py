"""The row model's search filters as SQL (the store before issue 30's blocks), kept as the oracle
tests/unit/test_row_match.py holds collector/store/row_match.py to: the same FilterSpec must
select the same events in Python over blocks as this SQL selected over rows.

Compile a FilterSpec into an SQLite WHERE clause that the row schema's indexes could serve.

- time, request_id, user, host: indexed comparisons (`GLOB 'abc*'` on a prefix uses the index);
- message keywords: the FTS5 index narrows the candidates, then LIKE keeps exact phrases exact;
- `--where`: SQL LIKE on the column (`time` compared as `YYYY-MM-DD HH:MM:SS.ffffff` text,
  `level` as its name), the classic audit-search syntax.
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any

from fleetlog.collector.filters import FilterSpec, MessageRegex, TextMatch, compile_message_regex
from fleetlog.collector.store.sqlite_hosts import host_origins_sql, text_condition
from fleetlog.common.levels import LEVEL_NAMES

_TIME_TEXT = "strftime('%Y-%m-%d %H:%M:%f', time / 1000000.0, 'unixepoch')"
_TIME_TEXT_US = ("(strftime('%Y-%m-%d %H:%M:%S', time / 1000000, 'unixepoch') || '.' || "
                 "substr('000000' || (time % 1000000), -6))")


def _text(column: str, match: TextMatch | None, params: list[Any]) -> str | None:
    return None if match is None else text_condition(column, match, params)


_TOKEN = re.compile(r"\w+")


def _fts_query(keywords: tuple[str, ...], phrases: tuple[str, ...]) -> str:
    """Each keyword and phrase becomes a quoted FTS5 string, ANDed, so nothing the operator types
    is read as FTS syntax; a keyword ending in `*` is a prefix query. Terms without any word
    character (`--`, `@`) cannot be indexed and are left to the literal check."""
    terms = []
    for word in keywords:
        prefix = word.endswith("*")
        core = word.rstrip("*") if prefix else word
        if _TOKEN.search(core):
            terms.append('"' + core.replace('"', '""') + '"' + ("*" if prefix else ""))
    for phrase in phrases:
        if _TOKEN.search(phrase):
            terms.append('"' + phrase.replace('"', '""') + '"')
    return " AND ".join(terms)


def _needs_literal_check(word: str) -> bool:
    """FTS5 splits `abc-123` or `user@x` into tokens and matches them as a phrase, which would also
    find `abc 123`; such keywords are checked literally as well."""
    return not re.fullmatch(r"\w+\*?", word)


def _like_literal(text: str) -> str:
    return "%" + re.sub(r"([\\%_])", r"\\\1", text) + "%"


# Filters with an index of their own; `walk_time` names those to check row by row while walking
# the time index instead (see collector/query.py for when that is faster).
INDEXED_FILTERS = ("request_id", "user", "host", "message")
SEVERE_LEVEL = 4   # warning: the partial index events_severe holds levels 0..4 (schema.py)


def compile_where(spec: FilterSpec, *, walk_time: frozenset[str] = frozenset(),
                  origin_ids: list[int] | None = None) -> tuple[str, list[Any]]:
    """The WHERE clause and its parameters, for the `events` table of a partition. A column in
    `walk_time` is written as `+column`, which keeps SQLite from using its index, so a limited
    search in time order walks the time index and stops after N matches instead of reading every
    match of a common value and sorting them. `origin_ids`: the host filter resolved on the main
    file (partition files have no origins table)."""
    clauses: list[str] = []
    params: list[Any] = []

    def add(clause: str | None) -> None:
        if clause:
            clauses.append(clause)

    # The caller's namespaces first, and every predicate that runs a pattern the user typed
    # against row text (regexp, LIKE) only on rows inside them (in_scope): SQLite does not promise
    # to evaluate AND terms in order, and a costly pattern run on other namespaces' rows would
    # tell their content by the response time.
    scope_sql, scope_params = "", []
    if spec.allowed_namespaces is not None:
        if not spec.allowed_namespaces:
            return "0", []
        scope_sql = f"namespace IN ({','.join('?' * len(spec.allowed_namespaces))})"
        scope_params = list(spec.allowed_namespaces)
        clauses.append(scope_sql)
        params.extend(scope_params)

    def in_scope(predicate: str, values: list[Any]) -> None:
        if scope_sql:
            clauses.append(f"CASE WHEN {scope_sql} THEN {predicate} END")
            params.extend([*scope_params, *values])
        else:
            clauses.append(predicate)
            params.extend(values)

    if spec.since_us is not None:
        clauses.append("time >= ?")
        params.append(spec.since_us)
    if spec.until_us is not None:
        clauses.append("time <= ?")
        params.append(spec.until_us)
    if spec.date_range is not None:
        clauses.append(f"time >= ? AND time < ? AND {_TIME_TEXT_US} LIKE ? ESCAPE '\\'")
        params.extend([spec.date_range[0], spec.date_range[1],
                       re.sub(r"([\\%_])", r"\\\1", spec.date_prefix or "") + "%"])
    if spec.max_level is not None:
        clauses.append("level <= ?")
        params.append(spec.max_level)
    if spec.levels:
        clauses.append(f"level IN ({','.join('?' * len(spec.levels))})")
        params.extend(spec.levels)
    only_severe = ((spec.max_level is not None and spec.max_level <= SEVERE_LEVEL)
                   or (spec.levels and max(spec.levels) <= SEVERE_LEVEL))
    if only_severe:
        # Changes no result; SQLite uses a partial index only when the query repeats its WHERE
        # term word for word.
        clauses.append(f"level <= {SEVERE_LEVEL}")
    add(_text("+request_id" if "request_id" in walk_time else "request_id", spec.request_id, params))
    add(_text("+user" if "user" in walk_time else "user", spec.user, params))
    if spec.host is not None:
        # Names and addresses resolve through the main file's small origins/node_addresses tables
        # (host_origins_sql) to origin ids, so the (origin, pos) index serves the filter.
        column = "+origin" if "host" in walk_time else "origin"
        if origin_ids is None:
            sql, hosts_params = host_origins_sql(spec.host)
            clauses.append(f"{column} IN ({sql})")
            params.extend(hosts_params)
        elif origin_ids:
            clauses.append(f"{column} IN ({','.join(str(int(o)) for o in origin_ids)})")
        else:
            clauses.append("0")
    add(_text("log_type", spec.log_type, params))
    add(_text("source", spec.source, params))
    add(_text("namespace", spec.namespace, params))
    add(_text("app", spec.app, params))
    add(_text("action", spec.action, params))
    if spec.keywords or spec.phrases:
        fts = _fts_query(spec.keywords, spec.phrases)
        if fts and "message" in walk_time:
            # A common word: SQLite builds the set of matching seqs once, then checks each row met
            # on the time walk against it (`+seq` keeps it from driving the query by that set).
            # A per-row FTS lookup instead (EXISTS ... rowid = seq) took seconds over 10M events.
            clauses.append("+seq IN (SELECT rowid FROM events_fts WHERE events_fts MATCH ?)")
            params.append(fts)
        elif fts:
            clauses.append("seq IN (SELECT rowid FROM events_fts WHERE events_fts MATCH ?)")
            params.append(fts)
        literal = [w for w in spec.keywords if _needs_literal_check(w) and not w.endswith("*")]
        literal += [w.rstrip("*") for w in spec.keywords if w.endswith("*") and _needs_literal_check(w.rstrip("*"))]
        for text in literal + list(spec.phrases):
            in_scope("message LIKE ? ESCAPE '\\'", [_like_literal(text)])
    if spec.message_regex:
        in_scope("regexp(?, message)", [spec.message_regex])
    for condition in spec.where:
        if condition.field == "time":
            column = _TIME_TEXT_US
        elif condition.field == "received_at":
            column = _TIME_TEXT_US.replace("time", "received_at")
        elif condition.field == "level":
            column = "level_name(level)"
        else:
            column = f'"{condition.field}"'
        # `%` is the only wildcard of this syntax: `_` and `\` are literal.
        in_scope(f"{column} LIKE ? ESCAPE '\\'", [re.sub(r"([\\_])", r"\\\1", condition.like)])
    if spec.after_seq:
        clauses.append("seq > ?")
        params.append(spec.after_seq)
    # `time <= ?` alone bounds the time index range; the OR only breaks ties within one microsecond.
    if spec.before_key is not None:
        clauses.append("time <= ? AND (time < ? OR seq < ?)")
        params.extend([spec.before_key[0], spec.before_key[0], spec.before_key[1]])
    if spec.after_key is not None:
        clauses.append("time >= ? AND (time > ? OR seq > ?)")
        params.extend([spec.after_key[0], spec.after_key[0], spec.after_key[1]])
    return " AND ".join(clauses), params


def probe_sql(spec: FilterSpec, name: str, cap: int,
              origin_ids: list[int] | None = None) -> tuple[str, list[Any]] | None:
    """SQL counting up to `cap` events that the indexed filter `name` alone matches, read from its
    own index; None when the spec does not use that filter."""
    if name == "message":
        fts = _fts_query(spec.keywords, spec.phrases) if (spec.keywords or spec.phrases) else ""
        if not fts:
            return None
        return f"SELECT count(*) FROM (SELECT 1 FROM events_fts WHERE events_fts MATCH ? LIMIT {int(cap)})", [fts]
    value = getattr(spec, name)
    if value is None:
        return None
    where, params = compile_where(FilterSpec(**{name: value}), origin_ids=origin_ids)
    return f"SELECT count(*) FROM (SELECT 1 FROM events WHERE {where} LIMIT {int(cap)})", params


def register_functions(conn: sqlite3.Connection) -> None:
    """SQL functions the compiled clauses use: regexp(pattern, text) and level_name(n).
    regexp matches with RE2 (compile_message_regex): linear in the text, so one row's match
    cannot run for ever inside this callback, where neither the query deadline nor any other
    thread gets a turn."""
    cache: dict[str, MessageRegex] = {}

    def regexp(pattern: str, text: str | None) -> bool:
        compiled = cache.get(pattern)
        if compiled is None:
            if len(cache) >= 64:
                cache.clear()
            compiled = cache[pattern] = compile_message_regex(pattern)
        return text is not None and compiled.found_in(text)

    conn.create_function("regexp", 2, regexp, deterministic=True)
    conn.create_function("level_name", 1, lambda n: LEVEL_NAMES[n] if n is not None and 0 <= n < 8 else None,
                         deterministic=True)
