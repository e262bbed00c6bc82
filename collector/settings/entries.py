"""The bodies of settings entries, in collector.toml's key names, read by the same code that reads
collector.toml (common/config.py), so a bad body gets --check-config's words:
- forwarders: one `[[forwarders]]` table (`name`, `type`, ... as in collector.toml);
- namespaces: `{"levels": "notice", "retention": {"general": "7d", "security": "1y"}}`, the
  namespace's entries of `[levels] namespaces` and `[retention] namespaces`; the name `*` holds the
  defaults for every other namespace (`[levels] default`, `[retention] general/security`);
- tokens: `{"name": ..., "role": ..., "namespaces": [...]}` as in tokens.toml; the store keeps the
  SHA-256 of the secret, which is answered once, at creation;
- alerts: one `[[alerting.rules]]` table (`threshold`, `window`, `filters`, ...), validated by the
  rule parser collector.toml's rules go through (collector/alerting/rules.py). Its `name` is the
  entry's.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from fleetlog.collector.alerting.rules import AlertRule
from fleetlog.collector.config import NamespaceRetention
from fleetlog.collector.forward import ForwarderConfig
from fleetlog.collector.identity import Role, TokenEntry
from fleetlog.collector.internal import COLLECTOR_NAMESPACE
from fleetlog.common.config import LevelName, build_value, to_plain
from fleetlog.common.errors import ConfigError, UsageError

KINDS = ("forwarders", "namespaces", "tokens", "alerts")
DEFAULTS = "*"              # the namespaces entry holding the defaults for new namespaces
MAX_NAME = 128
MAX_BODY_BYTES = 64 * 1024
MAX_TOKEN_NAMESPACES = 100
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]*$")


@dataclass(frozen=True)
class NamespaceSettings:
    levels: LevelName | None = None
    retention: NamespaceRetention | None = None


@dataclass(frozen=True)
class TokenSettings:
    """A token's body as the API takes it (the hash is made here, never sent)."""

    name: str
    role: Role
    namespaces: tuple[str, ...] = ()


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise UsageError(f"unknown settings kind {kind!r} (known: {', '.join(KINDS)})")
    return kind


def check_name(kind: str, name: Any) -> str:
    """Entry names are short printable words (they appear in URLs, files and audit events)."""
    if kind == "namespaces" and name == DEFAULTS:
        return name
    if not isinstance(name, str) or not name:
        raise UsageError(f"{kind}: name: required, a non-empty string")
    if len(name) > MAX_NAME or not _NAME.match(name):
        raise UsageError(f"{kind}: name: {shown(name)} is not a valid name (letters, digits and _ . : @ -, "
                         f"at most {MAX_NAME} characters, starting with a letter or digit)")
    return name


def shown(name: str) -> str:
    """A name as an error message quotes it: bounded (a lookup may send any name)."""
    return repr(name) if len(name) <= MAX_NAME else repr(name[:MAX_NAME]) + "..."


def parse_body(raw: bytes) -> dict[str, Any]:
    if len(raw) > MAX_BODY_BYTES:
        raise UsageError(f"body: larger than {MAX_BODY_BYTES // 1024} KiB")
    try:
        body = json.loads(raw or b"{}")
    except (ValueError, RecursionError):
        raise UsageError("body: not valid JSON") from None
    if not isinstance(body, dict):
        raise UsageError("body: expected a JSON object")
    return body


def _build(hint: Any, body: dict[str, Any], where: str) -> Any:
    try:
        return build_value(hint, body, where)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


# What a forwarder's answer adds to its collector.toml keys; a body that echoes them back (a page
# that PUTs what it read) has them ignored.
FORWARDER_STATUS_KEYS = ("source", "read_only", "changed", "state", "lag_events", "last_error", "last_error_at")


def forwarder(name: str, body: dict[str, Any]) -> tuple[bool, Any]:
    """(enabled, ForwarderConfig) from a body: collector.toml's keys, plus `enabled` (default
    true; a disabled forwarder stays stored and sends nothing). Its `name` is the entry's."""
    if "name" in body and body["name"] != name:
        raise UsageError(f"forwarders.{name}.name: the body names {body['name']!r}, the URL {name!r} "
                         "(rename = remove and add)")
    table = {k: v for k, v in body.items() if k not in FORWARDER_STATUS_KEYS and k != "enabled"}
    enabled = body.get("enabled", True)
    if not isinstance(enabled, bool):
        raise UsageError(f"forwarders.{name}.enabled: expected true or false, got {json.dumps(enabled)}")
    return enabled, _build(ForwarderConfig, {**table, "name": name}, f"forwarders.{name}")


# What an alert rule's answer adds to its collector.toml keys (ignored when a body echoes them).
ALERT_STATUS_KEYS = ("source", "read_only", "changed", "firing")


def alert(name: str, body: dict[str, Any]) -> AlertRule:
    """An AlertRule from a body: `[[alerting.rules]]`'s keys, checked as collector.toml's rules
    are. Its `name` is the entry's."""
    if "name" in body and body["name"] != name:
        raise UsageError(f"alerts.{name}.name: the body names {body['name']!r}, the URL {name!r} "
                         "(rename = remove and add)")
    table = {k: v for k, v in body.items() if k not in ALERT_STATUS_KEYS}
    return _build(AlertRule, {**table, "name": name}, f"alerts.{name}")


def namespace(name: str, body: dict[str, Any]) -> NamespaceSettings:
    return _build(NamespaceSettings, body, f"namespaces.{name}")


def token(body: dict[str, Any], sha256: str) -> TokenEntry:
    """A TokenEntry (validated as tokens.toml's) from a creation body and the secret's hash."""
    settings: TokenSettings = _build(TokenSettings, body, "tokens")
    check_name("tokens", settings.name)
    if len(settings.namespaces) > MAX_TOKEN_NAMESPACES:
        raise UsageError(f"tokens.namespaces: at most {MAX_TOKEN_NAMESPACES} namespaces")
    for namespace_name in settings.namespaces:
        if namespace_name != COLLECTOR_NAMESPACE:    # TokenEntry's own check names that one
            check_name("tokens.namespaces", namespace_name)
    entry = {"name": settings.name, "sha256": sha256, "role": settings.role,
             "namespaces": list(settings.namespaces)}
    return _build(TokenEntry, entry, f"tokens.{settings.name}")


def plain(value: Any) -> dict[str, Any]:
    """A parsed body as JSON, spelled as collector.toml spells it (durations, sizes, levels),
    without the keys left unset."""
    return _clean(to_plain(value))


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if v is not None}
    return value
