"""What every view needs from the request: the running collector (collector/running.py, the
views' one way into the collector), the console's auth, the templates, and the caller (or
NotSignedIn, which the server turns into 401 or the sign-in page)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import jinja2
from aiohttp import web

from fleetlog.collector.identity import Caller
from fleetlog.collector.web.auth import ConsoleAuth

if TYPE_CHECKING:
    from fleetlog.collector.running import RunningCollector

COLLECTOR_KEY: web.AppKey[RunningCollector] = web.AppKey("collector", object)   # type: ignore[arg-type]
AUTH_KEY = web.AppKey("auth", ConsoleAuth)
TEMPLATES_KEY = web.AppKey("templates", jinja2.Environment)


class NotSignedIn(Exception):
    """No credentials at all: 401 for the API, the sign-in page for pages."""


def collector_of(request: web.Request) -> RunningCollector:
    return request.app[COLLECTOR_KEY]


def auth_of(request: web.Request) -> ConsoleAuth:
    return request.app[AUTH_KEY]


def require_caller(request: web.Request) -> Caller:
    caller = auth_of(request).caller(request)
    if caller is None:
        raise NotSignedIn()
    return caller
