"""The running configuration = collector.toml + the store's entries.

Precedence (docs/settings.md): an entry collector.toml defines — a forwarder by name, a namespace
named in `[levels] namespaces` or `[retention] namespaces`, a token of tokens_file, an alert rule
of `[[alerting.rules]]` by name — is read-only
here (`"source": "collector.toml"`), and the store may not define the same name. The defaults for
new namespaces (`*`) are the exception: collector.toml gives their first values, and once set
through the settings, the store's values win for the keys the entry sets (`"source": "settings"`).

Built in full before anything changes; a set of entries that does not build raises UsageError
with collector.toml's words and the running configuration stays.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

from fleetlog.collector.config import CollectorConfig, NamespaceRetention
from fleetlog.collector.identity import TokenEntry
from fleetlog.collector.settings import entries
from fleetlog.collector.store.settings_rows import SettingsRow
from fleetlog.common.config import FieldError
from fleetlog.common.errors import UsageError

FILE = "collector.toml"
STORE = "store"


@dataclass(frozen=True)
class Effective:
    config: CollectorConfig
    tokens: tuple[TokenEntry, ...]          # the store's (tokens_file's stay with the Authenticator)
    disabled: tuple[Any, ...] = ()          # the store's forwarders with `enabled = false`: kept, not run


def file_namespaces(config: CollectorConfig) -> set[str]:
    return set(config.levels.namespaces) | set(config.retention.namespaces)


def body_of(row: SettingsRow) -> dict[str, Any]:
    try:
        body = json.loads(row.body)
    except ValueError:
        raise UsageError(f"{row.kind}.{row.name}: the stored body is not valid JSON") from None
    if not isinstance(body, dict):
        raise UsageError(f"{row.kind}.{row.name}: the stored body is not a JSON object")
    return body


def build(file_config: CollectorConfig, rows: Iterable[SettingsRow], file_tokens: Iterable[str] = ()) -> Effective:
    """The configuration the collector runs with these rows; UsageError naming the entry when it
    does not build."""
    file_forwarders = {f.name for f in file_config.forwarders}
    named_in_file = file_namespaces(file_config)
    taken_tokens = set(file_tokens)
    forwarders = list(file_config.forwarders)
    levels = dict(file_config.levels.namespaces)
    retention = dict(file_config.retention.namespaces)
    default_level = file_config.levels.default
    general, security = file_config.retention.general, file_config.retention.security
    file_rules = {r.name for r in file_config.alerting.rules}
    rules = list(file_config.alerting.rules)
    tokens: list[TokenEntry] = []
    disabled: list[Any] = []
    for row in rows:
        body = body_of(row)
        if row.kind == "forwarders":
            if row.name in file_forwarders:
                continue        # the file's entry wins (and the API refuses to make one)
            enabled, config = entries.forwarder(row.name, body)
            (forwarders if enabled else disabled).append(config)
        elif row.kind == "namespaces":
            ns = entries.namespace(row.name, body)
            if row.name == entries.DEFAULTS:
                default_level = ns.levels if ns.levels is not None else default_level
                if ns.retention is not None:
                    general = ns.retention.general if ns.retention.general is not None else general
                    security = ns.retention.security if ns.retention.security is not None else security
            elif row.name not in named_in_file:
                if ns.levels is not None:
                    levels[row.name] = ns.levels
                if ns.retention is not None:
                    retention[row.name] = ns.retention
        elif row.kind == "tokens" and row.name not in taken_tokens:
            tokens.append(stored_token(row.name, body))
        elif row.kind == "alerts" and row.name not in file_rules:
            rules.append(entries.alert(row.name, body))
    config = replace(
        file_config, forwarders=tuple(forwarders),
        levels=replace(file_config.levels, default=default_level, namespaces=MappingProxyType(levels)),
        retention=replace(file_config.retention, general=general, security=security,
                          namespaces=MappingProxyType(retention)),
        alerting=replace(file_config.alerting, rules=tuple(rules)))
    for section, where in ((config, ""), (config.alerting, "alerting.")):   # stored rules need an Alertmanager too
        try:
            section.validate()
        except FieldError as exc:
            raise UsageError(f"{where}{exc.key}: {exc.problem}") from None
    return Effective(config, tuple(tokens), tuple(disabled))


def stored_token(name: str, body: dict[str, Any]) -> TokenEntry:
    return TokenEntry(name=name, sha256=str(body.get("sha256", "")), role=body.get("role", "agent"),
                      namespaces=tuple(body.get("namespaces", ())))


def namespace_view(config: CollectorConfig, name: str) -> dict[str, Any]:
    """A namespace's effective minimum level and retention, as the API answers them."""
    if name == entries.DEFAULTS:
        level, general, security = config.levels.default, config.retention.general, config.retention.security
    else:
        level = config.namespace_level(name)
        own = config.retention.namespaces.get(name, NamespaceRetention())
        general = own.general if own.general is not None else config.retention.general
        security = own.security if own.security is not None else config.retention.security
    return entries.plain(entries.NamespaceSettings(level, NamespaceRetention(general, security)))
