"""The metric names a PromQL expression reads — enough of PromQL for the expressions fleetlog ships
(alert rules, the Grafana dashboard) to be checked against what the daemons really expose."""

from __future__ import annotations

import re

# Words that stand where a metric name could: binary operators, modifiers, number literals.
KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left",
            "group_right", "inf", "nan"}

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_VARIABLE = re.compile(r"\$\{?\w+\}?")
_NAME = re.compile(r"(?<![\w.$])[A-Za-z_:][A-Za-z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """Names of the series an expression selects (not functions, aggregations or label names)."""
    text = _VARIABLE.sub("", _GROUPING.sub("", _RANGE.sub("", _MATCHERS.sub("", _STRING.sub('""', expr)))))
    names = set()
    for match in _NAME.finditer(text):
        word = match.group()
        if text[match.end():].lstrip().startswith("(") or word.lower() in KEYWORDS:
            continue   # a function or an aggregation, or an operator
        names.add(word)
    return names
