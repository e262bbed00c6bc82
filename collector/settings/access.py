"""Who may see and change which settings (contract §4.1 roles, issue 28):
- admin (and the trusted caller of a collector without credentials) sees and changes everything;
- namespace-admin sees and changes its namespaces' levels and retention, and the forwarders that
  select nothing but its namespaces (every include pattern is `namespace` = one of its
  namespaces, no wildcard), and likewise the alert rules whose `namespace` filter names only its
  namespaces (no wildcard); it sees tokens of its namespaces but changes none;
- auditor reads everything, namespace-auditor what a namespace-admin of its namespaces sees;
  neither changes anything; an agent sees nothing.
The namespace defaults (`*`) are the whole collector's: only admin and auditor see them."""

from __future__ import annotations

from typing import Any

from fleetlog.collector.filters import build_filter_spec
from fleetlog.collector.identity import Caller
from fleetlog.collector.settings.entries import DEFAULTS

WRITERS = ("admin", "trusted")
READERS = ("admin", "trusted", "auditor", "namespace-admin", "namespace-auditor")


def forwarder_namespaces(config: Any) -> set[str] | None:
    """The namespaces a forwarder can select, when its include patterns pin them; None: any."""
    include = config.filters.include
    if not include or any(p.field != "namespace" or "*" in p.pattern or "?" in p.pattern for p in include):
        return None
    return {p.pattern for p in include}


def rule_namespaces(rule: Any) -> set[str] | None:
    """The namespaces an alert rule can count, when its `namespace` filter pins them; None: any."""
    value = rule.filters.get("namespace")
    match = build_filter_spec({"namespace": value}).namespace if value else None
    if match is None or match.wildcards:
        return None
    return set(match.exact)


def within(caller: Caller, namespaces: set[str] | None) -> bool:
    if caller.namespaces is None:
        return True
    return namespaces is not None and bool(namespaces) and namespaces <= set(caller.namespaces)


def may_see(caller: Caller, kind: str, name: str, value: Any) -> bool:
    """`value`: the forwarder's config, or a token's entry; unused for namespaces."""
    if caller.role not in READERS:
        return False
    if caller.namespaces is None:
        return True
    if kind == "namespaces":
        return name != DEFAULTS and name in caller.namespaces
    if kind == "forwarders":
        return within(caller, forwarder_namespaces(value))
    if kind == "alerts":
        return within(caller, rule_namespaces(value))
    if kind == "tokens":
        return value.role != "admin" and value.role != "auditor" and within(caller, set(value.namespaces))
    return False


def may_change(caller: Caller, kind: str, name: str, before: Any, after: Any) -> str | None:
    """Why `caller` may not change the entry from `before` to `after` (None: absent), or None."""
    if caller.role in WRITERS:
        return None
    if caller.role != "namespace-admin":
        return f"role {caller.role!r} may not change settings"
    if kind == "namespaces":
        if name == DEFAULTS or name not in (caller.namespaces or ()):
            return f"namespace-admin {caller.name!r} may change only its namespaces ({', '.join(caller.namespaces or ())})"
        return None
    if kind == "forwarders":
        for config in (before, after):
            if config is not None and not within(caller, forwarder_namespaces(config)):
                return ("a namespace-admin may change only forwarders whose include patterns select nothing but "
                        f"its namespaces ({', '.join(caller.namespaces or ())}): "
                        'include = [{ field = "namespace", pattern = "NAME" }]')
        return None
    if kind == "alerts":
        for rule in (before, after):
            if rule is not None and not within(caller, rule_namespaces(rule)):
                return ("a namespace-admin may change only alert rules whose namespace filter names nothing but "
                        f"its namespaces ({', '.join(caller.namespaces or ())}): filters = {{ namespace = \"NAME\" }}")
        return None
    return f"role {caller.role!r} may not change {kind}"
