"""The settings routes' part of the OpenAPI document (contract §9; docs/settings.md): bodies are
collector.toml's keys, answers the settings layer's (collector/settings/layer.py)."""

from __future__ import annotations

from typing import Any

_ERROR = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_ERRORS = {
    "400": {"description": "invalid body; `error` is --check-config's line (key path, problem)", **_ERROR},
    "401": {"description": "no or unknown credentials", **_ERROR},
    "403": {"description": "the role may not do this, or no CSRF token with a session (audited)", **_ERROR},
    "404": {"description": "no such entry, or not one the caller may see", **_ERROR},
}
_CLASH = {"409": {"description": "the entry exists already, or collector.toml defines it (read-only)", **_ERROR}}


def _ok(description: str, schema: str = "") -> dict[str, Any]:
    body = {"$ref": f"#/components/schemas/{schema}"} if schema else {"type": "object"}
    return {"description": description, "content": {"application/json": {"schema": body}}}


def _name(what: str) -> dict[str, Any]:
    return {"name": "name" if what != "namespace" else "namespace", "in": "path", "required": True,
            "description": what, "schema": {"type": "string"}}


def _body(schema: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


def _op(summary: str, ok: dict[str, Any], status: str = "200", parameters: list[dict[str, Any]] | None = None,
        body: str = "", clash: bool = False) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "parameters": parameters or [],
                                 "responses": {status: ok, **_ERRORS, **(_CLASH if clash else {})}}
    if body:
        operation["requestBody"] = _body(body)
    return operation


SCHEMAS: dict[str, Any] = {
    "Changed": {"type": ["object", "null"], "description": "who changed the entry last",
                "properties": {"user": {"type": "string"}, "via": {"enum": ["web", "api", "cli"]},
                               "time": {"type": "string"}}},
    "ForwarderBody": {"type": "object", "description": "one [[forwarders]] table of collector.toml (name, type, "
                      "host, port, protocol, format, framing, facility, app_name, tls, path, rotate_bytes, "
                      "rotate_max, min_level, log_types, actions, include, exclude), plus enabled (default true)",
                      "required": ["type"], "properties": {"name": {"type": "string"}, "type": {
                          "enum": ["syslog", "jsonl", "file", "console"]}, "enabled": {"type": "boolean"}}},
    "Forwarder": {"type": "object", "description": "the forwarder's keys (effective values), and its status",
                  "properties": {"name": {"type": "string"}, "enabled": {"type": "boolean"},
                                 "source": {"enum": ["collector.toml", "store"]}, "read_only": {"type": "boolean"},
                                 "changed": {"$ref": "#/components/schemas/Changed"}, "state": {"type": "string"},
                                 "lag_events": {"type": "integer"}, "last_error": {"type": ["string", "null"]},
                                 "last_error_at": {"type": ["string", "null"]}}},
    "NamespaceBody": {"type": "object", "properties": {
        "levels": {"type": "string", "description": "the minimum level stored"},
        "retention": {"type": "object", "properties": {"general": {"type": "string"},
                                                        "security": {"type": "string"}}}}},
    "Namespace": {"type": "object", "properties": {
        "namespace": {"type": "string", "description": "`*`: the defaults for every other namespace"},
        "levels": {"type": ["string", "null"]}, "retention": {"type": "object"},
        "effective": {"$ref": "#/components/schemas/NamespaceBody"},
        "source": {"enum": ["collector.toml", "store", "default"]}, "read_only": {"type": "boolean"},
        "changed": {"$ref": "#/components/schemas/Changed"}}},
    "TokenBody": {"type": "object", "required": ["name", "role"], "properties": {
        "name": {"type": "string"},
        "role": {"enum": ["agent", "admin", "auditor", "namespace-admin", "namespace-auditor"]},
        "namespaces": {"type": "array", "items": {"type": "string"}}}},
    "Token": {"type": "object", "properties": {
        "name": {"type": "string"}, "role": {"type": "string"}, "namespaces": {"type": "array"},
        "source": {"enum": ["tokens_file", "store"]}, "created": {"type": ["string", "null"]},
        "last_used": {"type": ["string", "null"]}, "changed": {"$ref": "#/components/schemas/Changed"},
        "token": {"type": "string", "description": "the secret: only in the answer of its creation"}}},
    "AlertBody": {"type": "object", "description": "one [[alerting.rules]] table of collector.toml (name, "
                  "threshold, window, filters, group_by, for, severity, summary), checked by the same rule parser",
                  "required": ["threshold", "window"], "properties": {
                      "name": {"type": "string"}, "threshold": {"type": "integer"}, "window": {"type": "string"},
                      "filters": {"type": "object", "additionalProperties": {"type": "string"}},
                      "group_by": {"type": "array", "items": {"type": "string"}}, "for": {"type": "string"},
                      "severity": {"type": "string"}, "summary": {"type": "string"}}},
    "Alert": {"type": "object", "description": "the rule's keys, and how many of its alerts fire now",
              "properties": {"name": {"type": "string"}, "source": {"enum": ["collector.toml", "store"]},
                             "read_only": {"type": "boolean"}, "changed": {"$ref": "#/components/schemas/Changed"},
                             "firing": {"type": "integer", "description": "alerts of this rule firing now (0 on "
                                        "a collector in standby)"}}},
}


def settings_paths() -> dict[str, Any]:
    base = "/api/v1/settings"
    dry_run = {"name": "dry_run", "in": "query", "required": False, "schema": {"enum": ["1", "0"]},
               "description": "1: change nothing, answer the effect ({\"effect\": {\"next_purge_removes\": N}})"}
    return {
        f"{base}/forwarders": {
            "get": _op("every forwarder the caller may see, with state, lag and last error",
                       _ok("{forwarders: [Forwarder]}")),
            "post": _op("add a forwarder", _ok("the forwarder", "Forwarder"), "201", body="ForwarderBody", clash=True)},
        f"{base}/forwarders/{{name}}": {
            "get": _op("one forwarder", _ok("the forwarder", "Forwarder"), parameters=[_name("forwarder")]),
            "put": _op("replace a forwarder's keys", _ok("the forwarder", "Forwarder"), parameters=[_name("forwarder")],
                       body="ForwarderBody", clash=True),
            "delete": _op("remove a forwarder", _ok("{deleted: name}"), parameters=[_name("forwarder")], clash=True)},
        f"{base}/forwarders/{{name}}/test": {
            "post": {**_op("send one test event through the forwarder's transport",
                           _ok("{ok: true, target, answer}"), parameters=[_name("forwarder")]),
                     "responses": {"200": _ok("{ok: true, target, answer}"),
                                   "502": _ok("{ok: false, target, answer, error}: what the destination answered"),
                                   **_ERRORS}}},
        f"{base}/namespaces": {
            "get": _op("the defaults (`*`) and every namespace with settings",
                       _ok("{defaults: Namespace|null, namespaces: [Namespace]}"))},
        f"{base}/namespaces/{{namespace}}": {
            "get": _op("one namespace's minimum level and retention", _ok("the namespace", "Namespace"),
                       parameters=[_name("namespace")]),
            "put": _op("set a namespace's minimum level and retention ({} removes its own)",
                       _ok("the namespace", "Namespace"), parameters=[_name("namespace"), dry_run],
                       body="NamespaceBody", clash=True)},
        f"{base}/tokens": {
            "get": _op("every token the caller may see (never a secret)", _ok("{tokens: [Token]}")),
            "post": _op("create a token; the answer holds its secret, once", _ok("the token and `token`", "Token"),
                        "201", body="TokenBody", clash=True)},
        f"{base}/tokens/{{name}}": {
            "delete": _op("revoke a token made here", _ok("{deleted: name}"), parameters=[_name("token")],
                          clash=True)},
        f"{base}/alerts": {
            "get": _op("every alert rule the caller may see, and whether it fires", _ok("{alerts: [Alert]}")),
            "post": _op("add an alert rule", _ok("the rule", "Alert"), "201", body="AlertBody", clash=True)},
        f"{base}/alerts/{{name}}": {
            "get": _op("one alert rule", _ok("the rule", "Alert"), parameters=[_name("alert rule")]),
            "put": _op("replace an alert rule's keys", _ok("the rule", "Alert"), parameters=[_name("alert rule")],
                       body="AlertBody", clash=True),
            "delete": _op("remove an alert rule", _ok("{deleted: name}"), parameters=[_name("alert rule")],
                          clash=True)},
    }
