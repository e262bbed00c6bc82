"""The settings API (contract §9): thin handlers over the settings layer (collector/settings/),
the same one the CLI's gRPC calls reach. State-changing calls need a bearer token or the session's
CSRF token; `fields.via` of their audit events is "api" with a bearer token, "web" with a session."""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from fleetlog.collector.identity import Caller
from fleetlog.collector.settings.entries import parse_body
from fleetlog.collector.settings.errors import SettingsClash, SettingsNotFound, SettingsRefused
from fleetlog.collector.web.auth import Denied, bearer_token
from fleetlog.collector.web.context import auth_of, collector_of, require_caller
from fleetlog.common.errors import UsageError

PREFIX = "/api/v1/settings"
Handler = Callable[[web.Request, Caller], Awaitable[Any]]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, ensure_ascii=False))


def _via(request: web.Request) -> str:
    return "api" if bearer_token(request) is not None else "web"


def route(changes: bool = False, status: int = 200,
          params: tuple[str, ...] = ()) -> Callable[[Handler], Callable[[web.Request], Awaitable[web.Response]]]:
    """Caller first (401/403 as every API route), the CSRF token for a change, then the handler;
    the layer's refusals become 403 (audited), 404 and 409."""
    def wrap(handler: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
        @functools.wraps(handler)
        async def run(request: web.Request) -> web.Response:
            caller = require_caller(request)
            for key in request.query:
                if key not in params:
                    raise UsageError(f"unknown query parameter {key!r}")
            if changes:
                auth_of(request).check_csrf(request)
            try:
                answer = await handler(request, caller)
                return answer if isinstance(answer, web.Response) else _json(answer, status=status)
            except SettingsRefused as exc:
                raise Denied(str(exc), exc.caller) from None
            except SettingsNotFound as exc:
                return _json({"error": str(exc)}, status=404)
            except SettingsClash as exc:
                return _json({"error": str(exc)}, status=409)
        return run
    return wrap


async def _body(request: web.Request) -> dict[str, Any]:
    return parse_body(await request.read())


@route()
async def list_entries(request: web.Request, caller: Caller) -> Any:
    return collector_of(request).settings.list_entries(request.match_info["kind"], caller)


@route()
async def get_entry(request: web.Request, caller: Caller) -> Any:
    return collector_of(request).settings.get_entry(request.match_info["kind"], request.match_info["name"], caller)


def add_entry(kind: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    """POST of a forwarder or an alert rule, named by its body. A route per kind, so that a denial
    names the kind's route."""
    @route(changes=True, status=201)
    async def add(request: web.Request, caller: Caller) -> Any:
        body = await _body(request)
        return await collector_of(request).settings.put_entry(kind, "", body, caller, _via(request), create=True)
    return add


def put_entry(kind: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    @route(changes=True)
    async def put(request: web.Request, caller: Caller) -> Any:
        body = await _body(request)
        return await collector_of(request).settings.put_entry(kind, request.match_info["name"], body, caller,
                                                               _via(request), create=False)
    return put


@route(changes=True)
async def delete_entry(request: web.Request, caller: Caller) -> Any:
    return await collector_of(request).settings.delete(request.match_info["kind"], request.match_info["name"],
                                                       caller, _via(request))


@route(changes=True)
async def test_forwarder(request: web.Request, caller: Caller) -> Any:
    """200 {"ok": true, "target", "answer"} when the destination took the event; else 502 with
    the same and `error` (what it answered, or why it could not be reached)."""
    answer = await collector_of(request).settings.test_forwarder(request.match_info["name"], caller, _via(request))
    if not answer["ok"]:
        return _json({**answer, "error": answer["answer"]}, status=502)
    return answer


@route(changes=True, params=("dry_run",))
async def put_namespace(request: web.Request, caller: Caller) -> Any:
    dry_run = request.query.get("dry_run", "0")
    if dry_run not in ("0", "1", "true", "false"):
        raise UsageError(f"dry_run: expected 1 or 0, got {dry_run!r}")
    body = await _body(request)
    return await collector_of(request).settings.put_namespace(request.match_info["name"], body, caller,
                                                               _via(request), dry_run=dry_run in ("1", "true"))


@route(changes=True, status=201)
async def add_token(request: web.Request, caller: Caller) -> Any:
    return await collector_of(request).settings.create_token(await _body(request), caller, _via(request))


def add_routes(application: web.Application) -> None:
    router = application.router
    kinds = "{kind:forwarders|namespaces|tokens|alerts}"
    router.add_get(f"{PREFIX}/{kinds}", list_entries)
    for kind in ("forwarders", "alerts"):
        router.add_post(f"{PREFIX}/{kind}", add_entry(kind))
        router.add_put(f"{PREFIX}/{kind}/{{name}}", put_entry(kind))
    router.add_get(f"{PREFIX}/{{kind:forwarders|namespaces|alerts}}/{{name}}", get_entry)
    router.add_delete(f"{PREFIX}/{{kind:forwarders|tokens|alerts}}/{{name}}", delete_entry)
    router.add_post(f"{PREFIX}/forwarders/{{name}}/test", test_forwarder)
    router.add_put(f"{PREFIX}/namespaces/{{name}}", put_namespace)
    router.add_post(f"{PREFIX}/tokens", add_token)
