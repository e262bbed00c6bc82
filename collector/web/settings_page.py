"""The /settings page (contract §9): a shell with four tabs (forwarders, namespaces, alerts, access)
that collector/web/static/settings.js fills from the settings API, so the page, the API and
the CLI show and change the same things through one settings layer. The API decides what a
caller sees and may change; the page only hides the buttons a read-only role could not use."""

from __future__ import annotations

from aiohttp import web

from fleetlog.collector.settings.access import READERS, WRITERS
from fleetlog.collector.web.auth import Denied
from fleetlog.collector.web.context import require_caller
from fleetlog.collector.web.pages import render

# A namespace-admin changes its own namespaces' entries (collector/settings/access.py).
CHANGE_ROLES = (*WRITERS, "namespace-admin")


async def settings(request: web.Request) -> web.Response:
    caller = require_caller(request)
    if caller.role not in READERS:
        raise Denied(f"role {caller.role!r} may not read settings", caller)
    return render(request, "settings.html", caller=caller, may_change=caller.role in CHANGE_ROLES,
                  may_manage_tokens=caller.role in WRITERS)


def add_routes(application: web.Application) -> None:
    application.router.add_get("/settings", settings)
