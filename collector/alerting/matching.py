"""Which rules an event matches, cheaply for a thousand rules.

A rule's filters are the search's filters (collector/store/row_match.py evaluates them on a row
exactly as the store's queries do), so a rule counts what `fleetlog search` with the same flags
would list. The host filter matches the event's host name or address, as a search's does.

The index: most rules name exact values of some field (`action = "login.failed"`, a user, a
namespace) or levels (`min_level = "error"`); a rule is filed under the most selective of these
it has, and an event is tested only against the rules filed under its own values and level,
plus the few rules that name none of them (a host or message filter alone).
"""

from __future__ import annotations

import dataclasses
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from fleetlog.collector.alerting.rules import AlertRule
from fleetlog.collector.filters import FilterSpec, TextMatch, build_filter_spec
from fleetlog.collector.store import EVENT_COLUMNS
from fleetlog.collector.store.blocks import tokens
from fleetlog.collector.store.row_match import row_predicate
from fleetlog.common.levels import LEVEL_NAMES, Level
from fleetlog.common.wildcard import compile_wildcard

Row = Sequence[Any]
COLUMN = {name: i for i, name in enumerate(EVENT_COLUMNS)}
_LEVEL, _MESSAGE = COLUMN["level"], COLUMN["message"]
_HOST, _HOST_IP = COLUMN["host"], COLUMN["host_ip"]


def as_search_row(row: Row) -> tuple[Any, ...]:
    """A stored row (EVENT_COLUMNS) laid out as row_match's rows (ROW_COLUMNS: with the dedup
    key after seq and the link last, which no filter reads)."""
    return (row[0], None, None, *row[1:], None)


def _host_test(match: TextMatch) -> Callable[[Row], bool]:
    """The host filter: the event's host name or its address, exact or by wildcard (the
    wildcards joined into one expression: this test runs on every event for a rule filed
    nowhere else)."""
    exact = frozenset(match.exact)
    glob = (re.compile("|".join(f"(?:{compile_wildcard(p).pattern})" for p in match.wildcards), re.DOTALL).match
            if match.wildcards else None)

    def test(row: Row) -> bool:
        host, address = row[_HOST], row[_HOST_IP]
        if host in exact or address in exact:
            return True
        return glob is not None and ((host is not None and glob(host) is not None)
                                     or (address is not None and glob(address) is not None))
    return test


@dataclasses.dataclass
class CompiledRule:
    index: int                      # position in the configuration: the rule's id in the counts
    rule: AlertRule
    spec: FilterSpec
    test: Callable[[Row, tuple[Any, ...]], bool]   # (stored row, the same as a search row)
    group_columns: tuple[int, ...]


def compile_rule(index: int, rule: AlertRule) -> CompiledRule:
    spec = build_filter_spec(dict(rule.filters))
    return CompiledRule(index, rule, spec, _spec_test(spec), tuple(COLUMN[name] for name in rule.group_by))


def _spec_test(spec: FilterSpec) -> Callable[[Row, tuple[Any, ...]], bool]:
    host_test = _host_test(spec.host) if spec.host is not None else None
    predicate = row_predicate(dataclasses.replace(spec, host=None), None)
    if host_test is None:
        return lambda row, search_row: predicate(search_row)
    return lambda row, search_row: host_test(row) and predicate(search_row)


def _checked_by_index(compiled: CompiledRule, **cleared: Any) -> None:
    """The rule is filed under values of these filters, so every event the index offers it has
    passed them already: its own test leaves them out (BruteForce's `action` costs nothing)."""
    compiled.test = _spec_test(dataclasses.replace(compiled.spec, **cleared))


def required_word(spec: FilterSpec) -> str:
    """A word every message the rule matches holds as a whole word (a keyword search's word, as
    blocks.tokens cuts and folds it): the longest first word of its keywords and phrases (a
    keyword ending in `*` only when it has more than one word, the last being a prefix). ""
    when it has none."""
    words = []
    for text in (*spec.keywords, *spec.phrases):
        prefix = text in spec.keywords and text.endswith("*")
        found = tokens(text.rstrip("*") if prefix else text)
        if found and not (prefix and len(found) == 1):
            words.append(found[0])
    return max(words, key=len, default="")


# Fields a rule may be filed under when it names exact values of one, most selective first.
INDEX_FIELDS = ("request_id", "user", "action", "app", "source")
BROAD_FIELDS = ("log_type", "namespace")


def _file_by_value(compiled: CompiledRule, names: tuple[str, ...],
                   tables: dict[str, dict[str, list[CompiledRule]]]) -> bool:
    """File the rule under the exact values of the first of `names` it filters on without
    wildcards; False when it filters on none of them so."""
    for name in names:
        match: TextMatch | None = getattr(compiled.spec, name)
        if match is not None and not match.wildcards:
            for value in match.exact:
                tables[name][value].append(compiled)
            _checked_by_index(compiled, **{name: None})
            return True
    return False


class RuleIndex:
    """The rules filed by a field every event they match must have, the most selective a rule
    has: an exact request id, user, action, app or source; else a word its message keywords
    need; else levels without info; else an exact log type or namespace; else any levels."""

    def __init__(self, rules: Sequence[AlertRule]):
        self.rules = [compile_rule(i, rule) for i, rule in enumerate(rules)]
        tables: dict[str, dict[str, list[CompiledRule]]] = {name: defaultdict(list)
                                                            for name in (*INDEX_FIELDS, *BROAD_FIELDS)}
        by_word: dict[str, list[CompiledRule]] = defaultdict(list)
        self.by_level: list[list[CompiledRule]] = [[] for _ in LEVEL_NAMES]
        self.everywhere: list[CompiledRule] = []
        for compiled in self.rules:
            self._file(compiled, tables, by_word)
        # Only the fields some rule is filed under, as plain dicts (a lookup must not add keys).
        self.tables = [(COLUMN[name], dict(table)) for name, table in tables.items() if table]
        self.by_word = dict(by_word)

    def _file(self, compiled: CompiledRule, tables: dict[str, dict[str, list[CompiledRule]]],
              by_word: dict[str, list[CompiledRule]]) -> None:
        spec = compiled.spec
        if _file_by_value(compiled, INDEX_FIELDS, tables):
            return
        word = required_word(spec)
        if word:
            by_word[word].append(compiled)
            return
        levels = set(spec.levels) if spec.levels else None
        if spec.max_level is not None:
            below = set(range(spec.max_level + 1))
            levels = below if levels is None else levels & below
        # Levels without info (most events) before the broad fields: `min_level = "error"`
        # leaves few events, a namespace or log type many.
        if levels is not None and int(Level.INFO) not in levels:
            self._file_levels(compiled, levels)
            return
        if _file_by_value(compiled, BROAD_FIELDS, tables):
            return
        if levels is not None:
            self._file_levels(compiled, levels)
            return
        self.everywhere.append(compiled)

    def _file_levels(self, compiled: CompiledRule, levels: set[int]) -> None:
        for level in levels:
            if 0 <= level < len(self.by_level):
                self.by_level[level].append(compiled)
        _checked_by_index(compiled, levels=(), max_level=None)

    def candidates(self, row: Row) -> list[CompiledRule]:
        found: list[CompiledRule] = []
        for column, table in self.tables:
            rules = table.get(row[column])
            if rules:
                found += rules
        level = row[_LEVEL]
        if 0 <= level < len(self.by_level) and self.by_level[level]:
            found += self.by_level[level]
        if self.by_word and row[_MESSAGE]:
            # Each word once: a message that repeats a word must not offer its rules twice.
            for word in set(tokens(row[_MESSAGE])):
                rules = self.by_word.get(word)
                if rules:
                    found += rules
        if self.everywhere:
            found += self.everywhere
        return found

    def matches(self, row: Row) -> list[CompiledRule]:
        """The rules `row` matches."""
        candidates = self.candidates(row)
        if not candidates:
            return []
        search_row = as_search_row(row)
        return [c for c in candidates if c.test(row, search_row)]
