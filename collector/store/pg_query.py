"""Compile a FilterSpec into a PostgreSQL WHERE clause with the CLI's meaning (contract §1 Filters).

The same filters as the SQLite backend (collector/store/row_match.py), in PostgreSQL's terms:
- `*` wildcards become LIKE patterns (`%`, `_` and `\\` made literal);
- message keywords match whole words case-insensitively (`~*` with the word boundaries `\\m`,
  `\\M`), as the SQLite full-text index matches tokens; `word*` is a word prefix; a keyword that
  is not a plain word (`abc-123`, `user@x`) and every quoted phrase match as literal text (ILIKE);
- `--message-regex` is PostgreSQL's regular expression match (`~`): the common syntax (classes,
  anchors, groups, alternation, repetition) means the same as in Python;
- `--where` is ILIKE on the column (SQLite's LIKE is case-insensitive too), `time` compared as
  `YYYY-MM-DD HH:MM:SS.ffffff` text and `level` as its name.
Every value travels as a parameter (`%s`); no text the operator typed becomes SQL.
"""

from __future__ import annotations

import re
from typing import Any

from fleetlog.collector.filters import FilterSpec, TextMatch
from fleetlog.common.levels import LEVEL_NAMES


def _time_text(column: str) -> str:
    """µs since the epoch as `YYYY-MM-DD HH:MM:SS.ffffff` (integer arithmetic: exact to the µs)."""
    return (f"to_char(timestamp '1970-01-01' + ({column} / 1000000) * interval '1 second'"
            f" + mod({column}, 1000000) * interval '1 microsecond', 'YYYY-MM-DD HH24:MI:SS.US')")


_LEVEL_NAME = "(CASE level " + " ".join(f"WHEN {i} THEN '{name}'" for i, name in enumerate(LEVEL_NAMES)) + " END)"


def _like_escape(text: str) -> str:
    return re.sub(r"([\\%_])", r"\\\1", text)


def _wildcard(pattern: str) -> str:
    """Our `*` wildcard as a LIKE pattern (other LIKE metacharacters literal)."""
    return "%".join(_like_escape(part) for part in pattern.split("*"))


def _text(column: str, match: TextMatch | None, params: list[Any]) -> str | None:
    if match is None:
        return None
    parts = []
    if match.exact:
        parts.append(f"{column} = ANY(%s)")
        params.append(list(match.exact))
    for pattern in match.wildcards:
        parts.append(f"{column} LIKE %s")
        params.append(_wildcard(pattern))
    return "(" + " OR ".join(parts) + ")"


_WORD = re.compile(r"\w+")


def _keyword(word: str, params: list[Any]) -> str:
    prefix = word.endswith("*")
    core = word.rstrip("*") if prefix else word
    if _WORD.fullmatch(core):
        params.append(r"\m" + core + ("" if prefix else r"\M"))
        return "message ~* %s"
    params.append("%" + _like_escape(core) + "%")
    return "message ILIKE %s"


def compile_where(spec: FilterSpec) -> tuple[str, list[Any]]:
    """The WHERE clause (TRUE when there is no filter) and its parameters."""
    clauses: list[str] = []
    params: list[Any] = []

    def add(clause: str | None) -> None:
        if clause:
            clauses.append(clause)

    # The caller's namespaces first, and every predicate that runs a pattern the user typed
    # against row text (~, ILIKE) only on rows inside them (in_scope): the planner may reorder AND
    # terms, and a costly pattern run on other namespaces' rows would tell their content by the
    # response time. CASE evaluates its THEN only for rows that pass its WHEN.
    scoped = spec.allowed_namespaces is not None
    if scoped:
        clauses.append("namespace = ANY(%s)")
        params.append(list(spec.allowed_namespaces or ()))

    def in_scope(predicate: str, values: list[Any]) -> None:
        if scoped:
            clauses.append(f"CASE WHEN namespace = ANY(%s) THEN {predicate} END")
            params.extend([list(spec.allowed_namespaces or ()), *values])
        else:
            clauses.append(predicate)
            params.extend(values)

    if spec.since_us is not None:
        clauses.append("time >= %s")
        params.append(spec.since_us)
    if spec.until_us is not None:
        clauses.append("time <= %s")
        params.append(spec.until_us)
    if spec.date_range is not None:
        clauses.append(f"time >= %s AND time < %s AND {_time_text('time')} LIKE %s")
        params.extend([spec.date_range[0], spec.date_range[1], _like_escape(spec.date_prefix or "") + "%"])
    if spec.max_level is not None:
        clauses.append("level <= %s")
        params.append(spec.max_level)
    if spec.levels:
        clauses.append("level = ANY(%s)")
        params.append(list(spec.levels))
    add(_text("request_id", spec.request_id, params))
    add(_text('"user"', spec.user, params))
    if spec.host is not None:
        # Names and addresses resolve through the small origins/node_addresses tables, so the
        # events_origin index serves the filter.
        by_name = _text("host", spec.host, params)
        by_ip = _text("ip", spec.host, params)
        clauses.append(f"origin IN (SELECT id FROM origins WHERE {by_name} OR host IN "
                       f"(SELECT host FROM node_addresses WHERE {by_ip}))")
    add(_text("log_type", spec.log_type, params))
    add(_text("source", spec.source, params))
    add(_text("namespace", spec.namespace, params))
    add(_text("app", spec.app, params))
    add(_text("action", spec.action, params))
    for word in spec.keywords:
        values: list[Any] = []
        in_scope(_keyword(word, values), values)
    for phrase in spec.phrases:
        in_scope("message ILIKE %s", ["%" + _like_escape(phrase) + "%"])
    if spec.message_regex:
        in_scope("message ~ %s", [spec.message_regex])
    for condition in spec.where:
        if condition.field in ("time", "received_at"):
            column = _time_text(condition.field)
        elif condition.field == "level":
            column = _LEVEL_NAME
        else:
            column = f'"{condition.field}"::text'
        # `%` is the only wildcard of this syntax: `_` and `\` are literal.
        in_scope(f"{column} ILIKE %s", [re.sub(r"([\\_])", r"\\\1", condition.like)])
    # Keyset paging in the (time, chain, seq) order of searches; `time <=`/`>=` alone bounds the
    # time index range, the row comparison breaks the ties.
    if spec.before_key is not None:
        time_us, seq, chain = spec.before_key
        clauses.append("time <= %s AND (time, chain, seq) < (%s, %s, %s)")
        params.extend([time_us, time_us, chain, seq])
    if spec.after_key is not None:
        time_us, seq, chain = spec.after_key
        clauses.append("time >= %s AND (time, chain, seq) > (%s, %s, %s)")
        params.extend([time_us, time_us, chain, seq])
    return " AND ".join(clauses) or "TRUE", params
