"""The OpenAPI 3.1 document of /api/v1/ (served at /api/v1/openapi.json), built from the CLI's
filter table (common/filter_flags.py) so the two lists of filters cannot differ."""

from __future__ import annotations

from typing import Any

from fleetlog.collector.web.openapi_settings import SCHEMAS, settings_paths
from fleetlog.collector.web.queries import DEFAULT_LIMIT, MAX_LIMIT
from fleetlog.common import __version__
from fleetlog.common.event import FIELD_NAMES
from fleetlog.common.export.writers import EXPORTERS
from fleetlog.common.filter_flags import FILTER_FLAGS


def _param(name: str, description: str, schema: dict[str, Any] | None = None, where: str = "query",
           required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": where, "required": required, "description": description,
            "schema": schema or {"type": "string"}}


def _filters() -> list[dict[str, Any]]:
    return [_param(dest, f"{help_text} (as the CLI's {flag})") for flag, dest, _, help_text in FILTER_FLAGS]


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


_ERRORS = {"400": _error("invalid filter or parameter; `error` is the CLI's message"),
           "401": _error("no or unknown credentials"), "403": _error("the role may not do this")}


def _get(summary: str, parameters: list[dict[str, Any]], ok: dict[str, Any]) -> dict[str, Any]:
    return {"get": {"summary": summary, "parameters": parameters, "responses": {"200": ok, **_ERRORS}}}


def _download(summary: str, parameters: list[dict[str, Any]], ok: dict[str, Any]) -> dict[str, Any]:
    """An export or bundle: bounded per user and by the free disk (collector/web/export_jobs.py)."""
    operation = _get(summary, parameters, ok)
    operation["get"]["responses"].update({
        "429": _error("an export or bundle of the same user is still running (one at a time)"),
        "507": _error("data_dir has less free space than [web] export_min_free")})
    return operation


def _json_ok(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema or {"type": "object"}}}}


def openapi_document() -> dict[str, Any]:
    paging = [_param("limit", f"events per page, 1-{MAX_LIMIT} (default {DEFAULT_LIMIT})", {"type": "integer"}),
              _param("order", "desc (newest first, default) or asc", {"enum": ["desc", "asc"]}),
              _param("_next", "keyset token of the next page (`next` of the previous reply)")]
    event = {"type": "object", "properties": {name: {} for name in FIELD_NAMES}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "fleetlog collector API", "version": __version__,
                 "description": "Search, trace, export and status of a fleetlog collector. Filters are the CLI's "
                                "flags without dashes, `-` written `_`, with the CLI's meaning."},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "a token of the collector's tokens.toml"},
                                "session": {"type": "apiKey", "in": "cookie", "name": "fleetlog_session"}},
            "schemas": {"Error": {"type": "object", "properties": {"error": {"type": "string"}}},
                        "Event": event, **SCHEMAS},
        },
        "security": [{"bearer": []}, {"session": []}],
        "paths": {
            "/api/v1/events": _get("matching events, one page", _filters() + paging, _json_ok(
                "a page of events and the token of the next",
                {"type": "object", "properties": {"events": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}},
                                                  "next": {"type": ["string", "null"]}}})),
            "/api/v1/trace/{request_id}": _get("every event of one request, oldest first",
                                               [_param("request_id", "the request id", where="path", required=True)],
                                               _json_ok("the request's events, with since_first_ms")),
            "/api/v1/status": _get("collector, nodes, forwarders, storage, chain", [], _json_ok("status")),
            "/api/v1/histogram": _get("event counts over time by level", _filters() + [
                _param("buckets", "number of time buckets (default 60)", {"type": "integer"})], _json_ok("buckets")),
            "/api/v1/export": _download("export matching events, oldest first (pdf: at most 10,000)", _filters() + [
                _param("format", "file format", {"enum": list(EXPORTERS)}, required=True),
                _param("columns", "comma list of columns (default: all; pdf: the table's)")],
                {"description": "the file (attachment)"}),
            "/api/v1/bundle": _download("support bundle .tar.gz (masked events, manifest, signed attestation)",
                                        _filters(), {"description": "the .tar.gz (attachment)"}),
            "/api/v1/follow": _get("live tail as server-sent events (id = the follow cursor past the event)",
                                   _filters() + [
                _param("cursor", "resume after this follow cursor (JSON object, chain -> seq)", {"type": "string"}),
                _param("after_seq", "resume after this seq (a one-chain store)", {"type": "integer"})],
                {"description": "text/event-stream"}),
            "/api/v1/notes": {"post": {
                "summary": "add a note (action Admin.EventLog.Note) to the event log",
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["text"], "properties": {
                        "text": {"type": "string"},
                        "namespace": {"type": "string", "description": "one the caller holds; default: "
                                      "a namespace-admin's only namespace, else default"}}}}}},
                "responses": {"201": _json_ok("the note's seq and id"), **_ERRORS}}},
            **settings_paths(),
        },
    }
