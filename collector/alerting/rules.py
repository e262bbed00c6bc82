"""`[alerting]` and `[[alerting.rules]]` of collector.toml (contract §11).

A rule is refused, at start and at reload alike, with its key and the reason (`--check-config`
prints the same line): filters are validated by the CLI's own filter code, so a filter means in
a rule what it means to `fleetlog search`.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from fleetlog.collector.filters import build_filter_spec
from fleetlog.common.config import Duration, FieldError
from fleetlog.common.errors import UsageError
from fleetlog.common.filter_flags import FILTER_FLAGS

# Filter keys a rule may use: the CLI's flags, `-` written `_`. The time flags are left out: a
# rule's window is its time range.
TIME_FILTERS = ("since", "until", "date")
RULE_FILTERS = tuple(dest for _, dest, _, _ in FILTER_FLAGS if dest not in TIME_FILTERS)

# Event fields a rule may group by; each becomes an Alertmanager label of that name.
GROUP_FIELDS = ("host", "host_ip", "collector", "namespace", "source", "log_type", "app", "level",
                "request_id", "user", "action")

# Labels the evaluator sets itself: a group_by field may not take their name.
OWN_LABELS = ("alertname", "severity", "collector")

# The alert evaluator's lease and cursor name (beside the forwarders'; no forwarder may take it).
EVALUATOR_NAME = "alerting:evaluator"

# Alertmanager's label names (Prometheus's data model), and a bound on what we send in one.
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
MAX_NAME_CHARS = 128
MAX_SUMMARY_CHARS = 1024
MAX_RULES = 10_000


@dataclass(frozen=True)
class AlertRule:
    name: str
    threshold: int
    window: Duration
    filters: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    group_by: tuple[str, ...] = ()
    for_: Duration = field(default=0.0, metadata={"toml": "for"})
    severity: str = "warning"
    summary: str = ""

    def validate(self) -> None:
        if not self.name or len(self.name) > MAX_NAME_CHARS or not self.name.isprintable():
            raise FieldError("name", f"must be 1 to {MAX_NAME_CHARS} printable characters")
        for key, value in self.filters.items():
            if key in TIME_FILTERS:
                raise FieldError(f"filters.{key}", "a rule counts events within its window; "
                                 "time filters are not accepted")
            if key not in RULE_FILTERS:
                raise FieldError(f"filters.{key}", f"unknown filter (filters: {', '.join(RULE_FILTERS)})")
            try:
                build_filter_spec({key: value})
            except UsageError as exc:
                raise FieldError(f"filters.{key}", str(exc)) from None
        for i, name in enumerate(self.group_by):
            if name not in GROUP_FIELDS:
                raise FieldError(f"group_by[{i}]", f"unknown field {name!r} (fields: {', '.join(GROUP_FIELDS)})")
            if name == "collector":
                raise FieldError(f"group_by[{i}]", "collector is a label of every alert already")
            if self.group_by.index(name) != i:
                raise FieldError(f"group_by[{i}]", f"{name!r} is listed twice")
        if self.threshold < 1:
            raise FieldError("threshold", "must be at least 1")
        if not 1.0 <= self.window <= 86400.0:
            raise FieldError("window", "must be between 1s and 1d")
        if not 0.0 <= self.for_ <= 86400.0:
            raise FieldError("for", "must be between 0s and 1d")
        if not _LABEL_VALUE.match(self.severity):
            raise FieldError("severity", "must be 1 to 64 letters, digits or _ . : -")
        self.summary_fields()

    def summary_fields(self) -> list[str]:
        """The names the summary template uses (FieldError for one it cannot fill)."""
        if len(self.summary) > MAX_SUMMARY_CHARS:
            raise FieldError("summary", f"at most {MAX_SUMMARY_CHARS} characters")
        allowed = ("count", "name", *self.group_by)
        names = []
        try:
            parts = list(string.Formatter().parse(self.summary))
        except ValueError as exc:
            raise FieldError("summary", f"not a valid template: {exc} (write {{{{ and }}}} for braces)") from None
        for _, name, spec, conversion in parts:
            if name is None:
                continue
            if name not in allowed:
                raise FieldError("summary", f"{{{name}}} is neither count, name nor a group_by field "
                                 f"(it may name: {', '.join(allowed)})")
            if spec or conversion:
                raise FieldError("summary", f"{{{name}}}: no format specification or conversion is accepted")
            names.append(name)
        return names

    def key(self) -> tuple[Any, ...]:
        """A hashable identity of the whole rule (its filters table is a read-only mapping,
        which hashes not): equal keys, equal rules."""
        return tuple((f.name, tuple(sorted(value.items())) if isinstance(value, Mapping) else value)
                     for f in fields(self) for value in [getattr(self, f.name)])

    def render_summary(self, values: Mapping[str, str], count: int) -> str:
        template = self.summary or "{name}: {count} matching events"
        return template.format(count=count, name=self.name, **{k: values.get(k, "") for k in self.group_by})


@dataclass(frozen=True)
class AlertingConfig:
    alertmanager_urls: tuple[str, ...] = ()
    evaluation_interval: Duration = 15.0
    # While an alert fires it is sent again this often (Prometheus's --rules.alert.resend-delay),
    # so an Alertmanager that restarted or lost it learns it again.
    resend_delay: Duration = 60.0
    # The console's address for each alert's generatorURL ("https://logs.example:8433"); unset:
    # the [web] listen address.
    console_url: str = ""
    # Distinct groups one rule keeps counting (group_by values come from the events, which peers
    # write); further groups are not counted, and counted in a metric.
    max_groups_per_rule: int = 10_000
    rules: tuple[AlertRule, ...] = ()

    def validate(self) -> None:
        for i, url in enumerate(self.alertmanager_urls):
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise FieldError(f"alertmanager_urls[{i}]", f"expected an http:// or https:// URL, got {url!r}")
            if parts.query or parts.fragment:
                raise FieldError(f"alertmanager_urls[{i}]", "no query or fragment: the Alertmanager's base URL")
        if self.console_url:
            parts = urlsplit(self.console_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise FieldError("console_url", f"expected an http:// or https:// URL, got {self.console_url!r}")
        if not 0.1 <= self.evaluation_interval <= 3600.0:
            raise FieldError("evaluation_interval", "must be between 100ms and 1h")
        if not self.evaluation_interval <= self.resend_delay <= 86400.0:
            raise FieldError("resend_delay", "must be between evaluation_interval and 1d")
        if not 1 <= self.max_groups_per_rule <= 1_000_000:
            raise FieldError("max_groups_per_rule", "must be between 1 and 1000000")
        if len(self.rules) > MAX_RULES:
            raise FieldError("rules", f"at most {MAX_RULES} rules")
        if self.rules and not self.alertmanager_urls:
            raise FieldError("alertmanager_urls", "rules need at least one Alertmanager URL")
        names: dict[str, int] = {}
        for i, rule in enumerate(self.rules):
            if rule.name in names:
                raise FieldError(f"rules[{i}].name", f"duplicate rule name {rule.name!r} (also rules[{names[rule.name]}])")
            names[rule.name] = i
