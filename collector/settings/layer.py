"""The settings layer: list, get, create, update, delete and test entries for the three front ends
(console API, gRPC for the CLI). Every change is checked against the caller's role (access.py),
built in full with the other entries before it is stored (effective.py: a change that does not
build is refused and nothing changes), stored with a version bump, applied here at once and by the
other collectors at their next poll (watcher.py), and recorded as a security-tier event
`settings/<kind>.<create|update|delete>` with before and after, secrets masked.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import pathlib
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fleetlog.collector.config import CollectorConfig
from fleetlog.collector.forward import build_sink
from fleetlog.collector.identity import Caller, TokenEntry
from fleetlog.collector.internal import COLLECTOR_NAMESPACE, InternalEvent
from fleetlog.collector.settings import access, effective, entries, purge_effect
from fleetlog.collector.settings.errors import SettingsClash, SettingsNotFound, SettingsRefused
from fleetlog.collector.settings.test_event import send_test_event
from fleetlog.collector.settings.watcher import SettingsWatcher
from fleetlog.collector.store.settings_rows import SettingsConflict, SettingsRow
from fleetlog.common.errors import ConfigError, UsageError
from fleetlog.common.masking import mask_fields
from fleetlog.common.timefmt import format_us, now_us

VIAS = ("web", "api", "cli")
MAX_ENTRIES = 1000          # per kind: every collector holds and rebuilds them all


@dataclass
class Hooks:
    """What the layer needs of the running collector (wired by CollectorApp)."""

    record: Callable[[list[InternalEvent]], Awaitable[Any]]           # own events, via the writer
    forwarder_status: Callable[[], list[tuple[str, str, int, str, float]]]
    histogram: purge_effect.Histogram                                 # blocking: the query engine's
    file_tokens: Callable[[], dict[str, TokenEntry]]                  # tokens_file's, by name
    token_uses: Callable[[], dict[str, int]]                          # name -> last use (µs)
    node_name: Callable[[], str]
    accepts_tokens: Callable[[], bool]                                # False: no credentials configured
    alerts_firing: Callable[[], dict[str, int]] = dict                # rule name -> its alerts firing now


def _when(us: int) -> str | None:
    return format_us(us) if us else None


def _changed(row: SettingsRow | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {"user": row.changed_by, "via": row.changed_via, "time": format_us(row.changed_at)}


class SettingsLayer:
    def __init__(self, watcher: SettingsWatcher, hooks: Hooks):
        self.watcher = watcher
        self.hooks = hooks

    # -- reading ----------------------------------------------------------------------------------

    @property
    def config(self) -> CollectorConfig:
        return self.watcher.effective.config

    @property
    def file_config(self) -> CollectorConfig:
        return self.watcher.file_config

    def _rows(self, kind: str) -> dict[str, SettingsRow]:
        return {r.name: r for r in self.watcher.rows if r.kind == kind}

    def _readable(self, caller: Caller) -> None:
        if caller.role not in access.READERS:
            raise SettingsRefused(f"role {caller.role!r} may not read settings", caller)

    def _views(self, kind: str) -> list[tuple[str, Any, dict[str, Any]]]:
        return {"forwarders": self._forwarders, "namespaces": self._namespaces, "tokens": self._tokens,
                "alerts": self._alerts}[kind]()

    def list_entries(self, kind: str, caller: Caller) -> dict[str, Any]:
        """The answer of `GET /api/v1/settings/{kind}`: {kind: [entries the caller may see]}, and
        for namespaces also `defaults` (admin and auditor only; else null)."""
        entries.check_kind(kind)
        self._readable(caller)
        views = [view for name, value, view in self._views(kind) if access.may_see(caller, kind, name, value)]
        if kind != "namespaces":
            return {kind: views}
        defaults = next((v for v in views if v["namespace"] == entries.DEFAULTS), None)
        return {"defaults": defaults, "namespaces": [v for v in views if v["namespace"] != entries.DEFAULTS]}

    def get_entry(self, kind: str, name: str, caller: Caller) -> dict[str, Any]:
        entries.check_kind(kind)
        self._readable(caller)
        views = self._views(kind)
        if kind == "namespaces" and not any(n == name for n, _, _ in views):
            views = [self._namespace_view(entries.check_name(kind, name))]
        for entry_name, value, view in views:
            if entry_name == name and access.may_see(caller, kind, name, value):
                return view
        raise SettingsNotFound(f"{kind}: no entry {entries.shown(name)}")

    def _forwarders(self) -> list[tuple[str, Any, dict[str, Any]]]:
        rows = self._rows("forwarders")
        in_file = {f.name for f in self.file_config.forwarders}
        status = {name: (state, lag, error, at) for name, state, lag, error, at in self.hooks.forwarder_status()}
        out = []
        running = [(c, True) for c in self.config.forwarders] + [(c, False) for c in self.watcher.effective.disabled]
        for config, enabled in running:
            state, lag, error, at = status.get(config.name, ("stopped", 0, "", 0.0)) if enabled else \
                ("disabled", 0, "", 0.0)
            source = effective.FILE if config.name in in_file else effective.STORE
            view = {**entries.plain(config), "enabled": enabled, "source": source,
                    "read_only": source == effective.FILE,
                    "changed": None if source == effective.FILE else _changed(rows.get(config.name)),
                    "state": state, "lag_events": lag, "last_error": error or None,
                    "last_error_at": _when(int(at * 1_000_000)) if at else None}
            out.append((config.name, config, view))
        return sorted(out, key=lambda item: item[0])

    def _alerts(self) -> list[tuple[str, Any, dict[str, Any]]]:
        """Every rule that runs: collector.toml's (read-only) and the store's, with how many of
        its alerts fire now (on the collector that evaluates; 0 on one in standby)."""
        rows = self._rows("alerts")
        in_file = {r.name for r in self.file_config.alerting.rules}
        firing = self.hooks.alerts_firing()
        out = []
        for rule in self.config.alerting.rules:
            source = effective.FILE if rule.name in in_file else effective.STORE
            view = {**entries.plain(rule), "source": source, "read_only": source == effective.FILE,
                    "changed": None if source == effective.FILE else _changed(rows.get(rule.name)),
                    "firing": firing.get(rule.name, 0)}
            out.append((rule.name, rule, view))
        return sorted(out, key=lambda item: item[0])

    def _namespace_view(self, name: str) -> tuple[str, Any, dict[str, Any]]:
        """A namespace: `levels` and `retention` it sets itself (null: the default's), and
        `effective`, what applies to it; the defaults entry `*` has every value."""
        row = self._rows("namespaces").get(name)
        in_file = name != entries.DEFAULTS and name in effective.file_namespaces(self.file_config)
        view = effective.namespace_view(self.config, name)
        if name == entries.DEFAULTS:
            own = view
            source = effective.STORE if row is not None else effective.FILE
        elif in_file:
            retention = self.file_config.retention.namespaces.get(name)
            level = self.file_config.levels.namespaces.get(name)
            own = entries.plain(entries.NamespaceSettings(level, retention))
            source = effective.FILE
        else:
            own = effective.body_of(row) if row is not None else {}
            source = effective.STORE if row is not None else "default"
        retention_own = own.get("retention") or {}
        answer = {"namespace": name, "levels": own.get("levels"),
                  "retention": {"general": retention_own.get("general"), "security": retention_own.get("security")},
                  "effective": view, "source": source, "read_only": in_file,
                  "changed": _changed(row) if not in_file else None}
        return name, None, answer

    def _namespaces(self) -> list[tuple[str, Any, dict[str, Any]]]:
        """The defaults, the namespaces with settings, and those a token names (where agents write
        and namespace roles work), so a page can set one that has no settings yet."""
        tokens = [*self.hooks.file_tokens().values(), *self.watcher.effective.tokens]
        named = {ns for token in tokens for ns in token.namespaces if ns != COLLECTOR_NAMESPACE}
        names = ({entries.DEFAULTS} | effective.file_namespaces(self.file_config) | set(self._rows("namespaces"))
                 | named)
        return [self._namespace_view(name) for name in sorted(names)]

    def _tokens(self) -> list[tuple[str, Any, dict[str, Any]]]:
        rows = self._rows("tokens")
        uses = self.hooks.token_uses()
        out = []
        for entry in self.hooks.file_tokens().values():
            out.append((entry.name, entry, {
                "name": entry.name, "role": entry.role, "namespaces": list(entry.namespaces), "source": "tokens_file",
                "read_only": True, "created": None, "last_used": _when(uses.get(entry.name, 0)), "changed": None}))
        file_names = set(self.hooks.file_tokens())
        for entry in self.watcher.effective.tokens:
            if entry.name in file_names:
                continue
            row = rows[entry.name]
            out.append((entry.name, entry, {
                "name": entry.name, "role": entry.role, "namespaces": list(entry.namespaces),
                "source": effective.STORE, "read_only": False, "created": format_us(row.created_at),
                "last_used": _when(uses.get(entry.name, 0)), "changed": _changed(row)}))
        return sorted(out, key=lambda item: item[0])

    # -- changing ---------------------------------------------------------------------------------

    async def _store(self, caller: Caller, via: str, kind: str, name: str, before_row: SettingsRow | None,
                     body: dict[str, Any] | None) -> None:
        """Build the configuration with this change, then store it, apply it here, audit it."""
        rows = [r for r in self.watcher.rows if not (r.kind == kind and r.name == name)]
        if before_row is None and sum(r.kind == kind for r in rows) >= MAX_ENTRIES:
            raise UsageError(f"{kind}: at most {MAX_ENTRIES} entries are kept in the store")
        if body is not None:
            now = now_us()
            rows.append(SettingsRow(kind, name, json.dumps(body), now, now, caller.name, via))
        effective.build(self.file_config, rows, self.hooks.file_tokens())   # UsageError: nothing changes
        try:
            await asyncio.to_thread(self.watcher.store.change, kind, name,
                                    None if body is None else json.dumps(body, ensure_ascii=False),
                                    caller.name, via, now_us(), before_row is not None)
        except SettingsConflict as exc:
            raise SettingsClash(str(exc)) from None
        await self.watcher.refresh()

    async def _audit(self, caller: Caller, via: str, kind: str, name: str, op: str,
                     before: dict[str, Any] | None, after: dict[str, Any] | None) -> None:
        fields = mask_fields({"via": via, "kind": kind, "name": name, "before": before, "after": after,
                              "peer_ip": caller.ip})
        await self.hooks.record([InternalEvent(f"settings/{kind}.{op}", f"{kind} {name!r} {op}d by {caller.name} "
                                               f"via {via}", user=caller.name, fields=fields)])

    def _check(self, caller: Caller, kind: str, name: str, before: Any, after: Any) -> None:
        why = access.may_change(caller, kind, name, before, after)
        if why is not None:
            raise SettingsRefused(why, caller)

    def _target(self, kind: str, name: str, body: dict[str, Any], caller: Caller, create: bool,
                current: Callable[[str], Any]) -> tuple[str, Any, SettingsRow | None]:
        """The entry a create or replace of a collector.toml-keyed kind aims at: (its name, what
        runs now under it or None, its stored row or None); 404, 409 as the API answers them."""
        name = entries.check_name(kind, body.get("name") if create else name)
        self._readable(caller)
        before = current(name)
        row = self._rows(kind).get(name)
        visible = before is not None and access.may_see(caller, kind, name, before)
        if not create and not visible:
            raise SettingsNotFound(f"{kind}: no entry {entries.shown(name)}")   # one the caller may not see: the same
        if visible and row is None:
            raise SettingsClash(f"{kind}: {name!r} is defined in collector.toml (read-only here)")
        if create and before is not None:
            raise SettingsClash(f"{kind}: {name!r} exists already")
        return name, before, row

    def _current_forwarder(self, name: str) -> Any:
        settled = self.watcher.effective
        return next((f for f in (*self.config.forwarders, *settled.disabled) if f.name == name), None)

    async def put_forwarder(self, name: str, body: dict[str, Any], caller: Caller, via: str,
                            create: bool) -> dict[str, Any]:
        name, before, row = self._target("forwarders", name, body, caller, create, self._current_forwarder)
        enabled, config = entries.forwarder(name, body)
        self._check(caller, "forwarders", name, before, config)
        self._check_file_target(caller, config)
        await asyncio.to_thread(_probe_sink, config)
        stored = {**entries.plain(config), "enabled": enabled}
        before_view = self.get_entry("forwarders", name, caller) if before is not None else None
        await self._store(caller, via, "forwarders", name, row, stored)
        await self._audit(caller, via, "forwarders", name, "create" if create else "update",
                          _forwarder_audit(before_view), stored)
        return self.get_entry("forwarders", name, caller)

    def _check_file_target(self, caller: Caller, config: Any) -> None:
        """A `file` forwarder made here writes where the collector may write: only an admin may
        make one, to an absolute path outside data_dir (the store, keys and cursors live there)."""
        if getattr(config, "type", "") != "file":
            return
        if caller.role not in access.WRITERS:
            raise SettingsRefused("only an admin may add or change a file forwarder (it writes on the "
                                  "collector's file system)", caller)
        path = pathlib.Path(config.path)
        data_dir = pathlib.Path(self.file_config.data_dir).resolve()
        if not path.is_absolute():
            raise UsageError(f"forwarders.{config.name}.path: must be an absolute path")
        resolved = path.resolve()
        if resolved == data_dir or data_dir in resolved.parents:
            raise UsageError(f"forwarders.{config.name}.path: must be outside data_dir ({data_dir}): the store, "
                             "its keys and cursors live there")

    def _current_rule(self, name: str) -> Any:
        return next((r for r in self.config.alerting.rules if r.name == name), None)

    async def put_entry(self, kind: str, name: str, body: dict[str, Any], caller: Caller, via: str,
                        create: bool) -> dict[str, Any]:
        """Add (create) or replace a forwarder or an alert rule."""
        put = {"forwarders": self.put_forwarder, "alerts": self.put_alert}.get(entries.check_kind(kind))
        if put is None:
            raise UsageError(f"{kind}: entries are not added or replaced this way")
        return await put(name, body, caller, via, create)

    async def put_alert(self, name: str, body: dict[str, Any], caller: Caller, via: str,
                        create: bool) -> dict[str, Any]:
        """Add or replace a stored alert rule; the evaluator takes it as on SIGHUP (the watcher's
        apply), here at once and on the other collectors at their next poll."""
        name, before, row = self._target("alerts", name, body, caller, create, self._current_rule)
        rule = entries.alert(name, body)
        self._check(caller, "alerts", name, before, rule)
        stored = entries.plain(rule)
        before_view = _alert_audit(self.get_entry("alerts", name, caller)) if before is not None else None
        await self._store(caller, via, "alerts", name, row, stored)
        await self._audit(caller, via, "alerts", name, "create" if create else "update", before_view, stored)
        return self.get_entry("alerts", name, caller)

    async def delete(self, kind: str, name: str, caller: Caller, via: str) -> dict[str, Any]:
        entries.check_kind(kind)
        if kind == "namespaces":
            raise UsageError("namespaces: an entry is changed with PUT (its values back to the defaults: "
                             "PUT {} )")
        row = self._rows(kind).get(name)
        view = self.get_entry(kind, name, caller) if row is not None or kind in ("forwarders", "alerts") else None
        if row is None:
            if view is not None or name in self.hooks.file_tokens():
                raise SettingsClash(f"{kind}: {name!r} is defined in {'tokens_file' if kind == 'tokens' else 'collector.toml'} "
                                    "(read-only here)")
            raise SettingsNotFound(f"{kind}: no entry {entries.shown(name)}")
        value = {"forwarders": self._current_forwarder, "alerts": self._current_rule}.get(
            kind, lambda n: next((t for t in self.watcher.effective.tokens if t.name == n), None))(name)
        self._check(caller, kind, name, value, None)
        before = {"forwarders": _forwarder_audit, "alerts": _alert_audit}.get(kind, lambda _: _token_audit(value))(view)
        await self._store(caller, via, kind, name, row, None)
        await self._audit(caller, via, kind, name, "delete", before, None)
        return {"deleted": name}

    async def put_namespace(self, name: str, body: dict[str, Any], caller: Caller, via: str,
                            dry_run: bool = False) -> dict[str, Any]:
        name = entries.check_name("namespaces", name)
        self._check(caller, "namespaces", name, None, None)
        if name in effective.file_namespaces(self.file_config):
            raise SettingsClash(f"namespaces: {name!r} is defined in collector.toml (read-only here)")
        settings = entries.namespace(name, body)
        before = effective.namespace_view(self.config, name)
        row = self._rows("namespaces").get(name)
        stored = entries.plain(settings)
        if dry_run:
            rows = [r for r in self.watcher.rows if not (r.kind == "namespaces" and r.name == name)]
            rows.append(SettingsRow("namespaces", name, json.dumps(stored), 0, 0, caller.name, via))
            after = effective.build(self.file_config, rows, self.hooks.file_tokens()).config
            removes = await asyncio.to_thread(purge_effect.next_purge_removes, after, name, self.hooks.histogram)
            return {"dry_run": True, "before": before, "after": effective.namespace_view(after, name),
                    "effect": {"next_purge_removes": removes}}
        if not stored and row is None:
            return self.get_entry("namespaces", name, caller)
        await self._store(caller, via, "namespaces", name, row, stored if stored else None)
        await self._audit(caller, via, "namespaces", name, "create" if row is None else
                          ("update" if stored else "delete"), before, effective.namespace_view(self.config, name))
        return self.get_entry("namespaces", name, caller)

    async def create_token(self, body: dict[str, Any], caller: Caller, via: str) -> dict[str, Any]:
        if not self.hooks.accepts_tokens():
            raise UsageError("tokens: this collector accepts callers without credentials (no tokens_file, no "
                             "mTLS); set tokens_file in collector.toml to manage tokens here")
        secret = "flt_" + secrets.token_urlsafe(32)
        entry = entries.token(body, hashlib.sha256(secret.encode()).hexdigest())
        self._check(caller, "tokens", entry.name, None, entry)
        if entry.name in self.hooks.file_tokens() or entry.name in self._rows("tokens"):
            raise SettingsClash(f"tokens: {entry.name!r} exists already")
        stored = {"sha256": entry.sha256, "role": entry.role, "namespaces": list(entry.namespaces)}
        await self._store(caller, via, "tokens", entry.name, None, stored)
        await self._audit(caller, via, "tokens", entry.name, "create", None, _token_audit(entry))
        return {**self.get_entry("tokens", entry.name, caller), "token": secret}

    async def test_forwarder(self, name: str, caller: Caller, via: str) -> dict[str, Any]:
        """Send one test event through the forwarder's transport; what the destination answered."""
        config = self._current_forwarder(name)
        if config is None or not access.may_see(caller, "forwarders", name, config):
            raise SettingsNotFound(f"forwarders: no entry {entries.shown(name)}")
        self._check(caller, "forwarders", name, config, config)
        answer = await send_test_event(config, self.hooks.node_name(), caller.name)
        await self.hooks.record([InternalEvent("settings/forwarders.test", f"test event sent through forwarder "
                                               f"{name!r} by {caller.name} via {via}: {answer['answer']}",
                                               user=caller.name,
                                               fields=mask_fields({"via": via, "kind": "forwarders", "name": name,
                                                                   **answer, "peer_ip": caller.ip}))])
        return answer


def _forwarder_audit(view: dict[str, Any] | None) -> dict[str, Any] | None:
    """A forwarder's keys as its audit event shows them (no status)."""
    if view is None:
        return None
    return {k: v for k, v in view.items() if k not in entries.FORWARDER_STATUS_KEYS}


def _alert_audit(view: dict[str, Any] | None) -> dict[str, Any] | None:
    """A rule's keys as its audit event shows them (no status)."""
    if view is None:
        return None
    return {k: v for k, v in view.items() if k not in entries.ALERT_STATUS_KEYS}


def _token_audit(entry: TokenEntry | None) -> dict[str, Any] | None:
    """A token as its audit event shows it: never the secret, nor its hash."""
    if entry is None:
        return None
    return {"role": entry.role, "namespaces": list(entry.namespaces)}


def _probe_sink(config: Any) -> None:
    """Build the forwarder's sink once (TLS files read, addresses parsed) and close it: a body
    that cannot run is refused before it is stored."""
    try:
        sink = build_sink(config)
    except ConfigError as exc:
        raise UsageError(f"forwarders.{config.name}.{exc}") from None
    sink.close()
