"""One settings call named by verb, kind and name (the gRPC `Admin/Settings` request behind the
CLI's verbs) mapped onto the layer, with the API's answers; `via` is "cli"."""

from __future__ import annotations

from typing import Any

from fleetlog.collector.identity import Caller
from fleetlog.collector.settings.entries import check_kind, parse_body, shown
from fleetlog.collector.settings.layer import SettingsLayer
from fleetlog.common.errors import UsageError

VERBS = ("list", "get", "create", "update", "delete", "test")


async def settings_call(layer: SettingsLayer, caller: Caller, request: Any) -> Any:
    verb, kind, name = request.verb, check_kind(request.kind[:64]), request.name
    if verb not in VERBS:
        raise UsageError(f"settings: unknown verb {shown(verb[:64])} (verbs: {', '.join(VERBS)})")
    body = parse_body(request.body_json.encode()) if request.body_json else {}
    if verb == "list":
        return layer.list_entries(kind, caller)
    if verb == "get":
        return layer.get_entry(kind, name, caller)
    if verb == "delete":
        return await layer.delete(kind, name, caller, "cli")
    if verb in ("create", "update") and kind in ("forwarders", "alerts"):
        return await layer.put_entry(kind, "" if verb == "create" else name, body, caller, "cli", create=verb == "create")
    if (verb, kind) == ("test", "forwarders"):
        return await layer.test_forwarder(name, caller, "cli")
    if (verb, kind) == ("update", "namespaces"):
        return await layer.put_namespace(name, body, caller, "cli", dry_run=request.dry_run)
    if (verb, kind) == ("create", "tokens"):
        return await layer.create_token(body, caller, "cli")
    raise UsageError(f"settings: {verb!r} is not a verb of {kind} (verbs: {', '.join(VERBS)})")
