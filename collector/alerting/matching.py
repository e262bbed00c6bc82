"""Which rules an event matches, cheaply for a thousand rules.

A rule's filters are the search's filters (collector/store/row_match.py evaluates them on a row
exactly as the store's queries do), so a rule counts what `fleetlog search` with the same flags
would list. The host filter matches the event's host name or address, as a search's does.

The index: most rules name exact actions (`login.failed`), levels (`--min-level error`) or
namespaces; a rule is filed under the first of these it has, and an event is tested only
against the rules filed under its own action, level and namespace, plus the few that name none
of them.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from fleetlog.collector.alerting.rules import AlertRule
from fleetlog.collector.filters import FilterSpec, TextMatch, build_filter_spec
from fleetlog.collector.store import EVENT_COLUMNS
from fleetlog.collector.store.row_match import row_predicate
from fleetlog.common.levels import LEVEL_NAMES
from fleetlog.common.wildcard import compile_wildcard

Row = Sequence[Any]
COLUMN = {name: i for i, name in enumerate(EVENT_COLUMNS)}
_ACTION, _LEVEL, _NAMESPACE = COLUMN["action"], COLUMN["level"], COLUMN["namespace"]
_HOST, _HOST_IP = COLUMN["host"], COLUMN["host_ip"]


def as_search_row(row: Row) -> tuple[Any, ...]:
    """A stored row (EVENT_COLUMNS) laid out as row_match's rows (ROW_COLUMNS: with the dedup
    key after seq and the link last, which no filter reads)."""
    return (row[0], None, None, *row[1:], None)


def _host_test(match: TextMatch) -> Callable[[Row], bool]:
    exact = frozenset(match.exact)
    globs = [compile_wildcard(p).match for p in match.wildcards]

    def test(row: Row) -> bool:
        for value in (row[_HOST], row[_HOST_IP]):
            if value and (value in exact or any(glob(value) for glob in globs)):
                return True
        return False
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
    host_test = _host_test(spec.host) if spec.host is not None else None
    predicate = row_predicate(dataclasses.replace(spec, host=None), None)
    if host_test is None:
        test: Callable[[Row, tuple[Any, ...]], bool] = lambda row, search_row: predicate(search_row)
    else:
        test = lambda row, search_row: host_test(row) and predicate(search_row)
    return CompiledRule(index, rule, spec, test, tuple(COLUMN[name] for name in rule.group_by))


class RuleIndex:
    """The rules filed by a field every event they match must have."""

    def __init__(self, rules: Sequence[AlertRule]):
        self.rules = [compile_rule(i, rule) for i, rule in enumerate(rules)]
        self.by_action: dict[str, list[CompiledRule]] = defaultdict(list)
        self.by_level: list[list[CompiledRule]] = [[] for _ in LEVEL_NAMES]
        self.by_namespace: dict[str, list[CompiledRule]] = defaultdict(list)
        self.everywhere: list[CompiledRule] = []
        for compiled in self.rules:
            self._file(compiled)
        # Plain dicts from here: a lookup of an absent key must not add it.
        self.by_action, self.by_namespace = dict(self.by_action), dict(self.by_namespace)

    def _file(self, compiled: CompiledRule) -> None:
        spec = compiled.spec
        if spec.action is not None and not spec.action.wildcards:
            for action in spec.action.exact:
                self.by_action[action].append(compiled)
            return
        levels = set(spec.levels) if spec.levels else None
        if spec.max_level is not None:
            below = set(range(spec.max_level + 1))
            levels = below if levels is None else levels & below
        if levels is not None:
            for level in levels:
                if 0 <= level < len(self.by_level):
                    self.by_level[level].append(compiled)
            return
        if spec.namespace is not None and not spec.namespace.wildcards:
            for namespace in spec.namespace.exact:
                self.by_namespace[namespace].append(compiled)
            return
        self.everywhere.append(compiled)

    def candidates(self, row: Row) -> list[CompiledRule]:
        found = self.by_action.get(row[_ACTION], [])
        level = row[_LEVEL]
        if 0 <= level < len(self.by_level) and self.by_level[level]:
            found = found + self.by_level[level]
        namespace_rules = self.by_namespace.get(row[_NAMESPACE])
        if namespace_rules:
            found = found + namespace_rules
        if self.everywhere:
            found = found + self.everywhere
        return found

    def matches(self, row: Row) -> list[CompiledRule]:
        """The rules `row` matches."""
        candidates = self.candidates(row)
        if not candidates:
            return []
        search_row = as_search_row(row)
        return [c for c in candidates if c.test(row, search_row)]
