"""The console's pages: sign-in/out, events, trace, status. Each renders the same data as its
/api/v1/ twin (collector/web/queries.py) through a plain Jinja2 template with autoescaping, so
log content is always text, never markup."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, unquote, urlencode

from aiohttp import web

from fleetlog.collector.identity import Caller
from fleetlog.collector.settings import access as settings_access
from fleetlog.collector.web import queries
from fleetlog.collector.web.auth import COOKIE, Denied
from fleetlog.collector.web.context import TEMPLATES_KEY, auth_of, collector_of, require_caller
from fleetlog.common.errors import AuthError, UsageError
from fleetlog.common.event import FIELD_NAMES
from fleetlog.common.levels import LEVEL_NAMES

TITLE_FILTERS = ("since", "until", "min_level", "level", "message", "message_regex", "where", "namespace",
                 "log_type", "source", "app", "action", "date")
MAX_NEXT = 4096


def signin_url(request: web.Request) -> str:
    return "/signin?" + urlencode({"next": request.path_qs})


def _safe_next(target: str | None) -> str:
    """Only a path on this site may follow a sign-in: one leading "/", and neither a backslash nor
    a control or space character, raw or percent-decoded in the path, since browsers drop tabs
    and newlines and read `\\` as `/` (`/<TAB>/evil.example` would become `//evil.example`)."""
    if not target or len(target) > MAX_NEXT:
        return "/events"
    path = unquote(target.split("?", 1)[0].split("#", 1)[0])
    for text in (target, path):
        if (not text.startswith("/") or text.startswith("//") or "\\" in text
                or any(c.isspace() or not c.isprintable() for c in text)):
            return "/events"
    return target


def render(request: web.Request, name: str, status: int = 200, caller: Caller | None = None,
           **context: Any) -> web.Response:
    auth = auth_of(request)
    session = auth.session_of(request)
    new_session = None
    if caller is not None and session is None and auth.open:
        # Open (trusted loopback) mode has no sign-in, but POSTs still need a CSRF token.
        session = new_session = auth.sessions.create(caller)
    template = request.app[TEMPLATES_KEY].get_template(name)
    html = template.render(caller=caller, csrf=session.csrf if session else "", levels=LEVEL_NAMES,
                           open_mode=auth.open, settings_link=caller is not None and caller.role in settings_access.READERS,
                           **context)
    response = web.Response(text=html, content_type="text/html", status=status)
    if new_session is not None:
        auth.set_cookie(response, new_session)
    return response


def render_error(request: web.Request, status: int, message: str) -> web.Response:
    try:
        caller = auth_of(request).caller(request)
    except (AuthError, Denied):
        caller = None
    return render(request, "error.html", status=status, caller=caller, status_code=status, message=message)


async def signin_page(request: web.Request) -> web.Response:
    return render(request, "signin.html", next=_safe_next(request.query.get("next")), error="",
                  mtls=auth_of(request).mtls)


async def signin(request: web.Request) -> web.StreamResponse:
    auth = auth_of(request)
    form = await request.post()
    target = _safe_next(str(form.get("next", "")))
    origin = request.headers.get("Origin")
    if origin and origin != f"{request.scheme}://{request.host}":
        raise Denied("sign-in from another site refused")
    try:
        caller = auth.sign_in(str(form.get("token", "")).strip(), request)
    except (AuthError, Denied) as exc:
        if isinstance(exc, AuthError):
            collector_of(request).failed_authentication(request.remote or "")
        await collector_of(request).record_denial(getattr(exc, "caller", None), "web sign-in", str(exc), None,
                                                  ip=request.remote or "")
        await auth.slow_down(request)
        return render(request, "signin.html", status=401, next=target, error=f"sign-in failed: {exc}",
                      mtls=auth.mtls)
    auth.throttle.succeeded(request.remote or "")
    auth.sessions.end(request.cookies.get(COOKIE))
    session = auth.sessions.create(caller)
    response = web.Response(status=303, headers={"Location": target})
    auth.set_cookie(response, session)
    return response


async def signout(request: web.Request) -> web.StreamResponse:
    auth = auth_of(request)
    form = await request.post()
    csrf = form.get("csrf")
    auth.check_csrf(request, csrf if isinstance(csrf, str) else None)
    auth.sessions.end(request.cookies.get(COOKIE))
    response = web.Response(status=303, headers={"Location": "/signin"})
    response.del_cookie(COOKIE, path="/")
    return response


async def home(request: web.Request) -> web.StreamResponse:
    return web.Response(status=302, headers={"Location": "/events"})


async def events(request: web.Request) -> web.Response:
    caller = require_caller(request)
    query = dict(request.query)
    context: dict[str, Any] = {"query": query, "error": "", "page": None, "columns": list(queries.TABLE_COLUMNS),
                               "default_columns": queries.TABLE_COLUMNS, "all_fields": FIELD_NAMES,
                               "link": lambda **changes: "/events?" + queries.page_links(query, **changes),
                               "query_string": queries.page_links(query, _next=None, columns=None, limit=None,
                                                                  order=None)}
    try:
        context["columns"] = queries.columns_of(query.get("columns"))
        context["page"] = await queries.search_events(collector_of(request), caller, query, ("columns",))
    except UsageError as exc:
        context["error"] = str(exc)
        return render(request, "events.html", status=400, caller=caller, **context)
    return render(request, "events.html", caller=caller, **context)


async def trace(request: web.Request) -> web.Response:
    caller = require_caller(request)
    result = await queries.trace(collector_of(request), caller, request.match_info["request_id"])
    return render(request, "trace.html", caller=caller, trace=result,
                  api_url="/api/v1/trace/" + quote(result["request_id"], safe=""))


async def status(request: web.Request) -> web.Response:
    caller = require_caller(request)
    return render(request, "status.html", caller=caller, st=await queries.status(collector_of(request), caller))


async def notes(request: web.Request) -> web.StreamResponse:
    """Notes are events: the events page filtered to them, with the form to add one."""
    require_caller(request)
    return web.Response(status=302, headers={"Location": "/events?action=Admin.EventLog.Note"})


async def favicon(request: web.Request) -> web.StreamResponse:
    return web.Response(status=204)


def add_routes(application: web.Application) -> None:
    application.router.add_get("/", home)
    application.router.add_get("/favicon.ico", favicon)
    application.router.add_get("/signin", signin_page)
    application.router.add_post("/signin", signin)
    application.router.add_post("/signout", signout)
    application.router.add_get("/events", events)
    application.router.add_get("/trace/{request_id:.+}", trace)
    application.router.add_get("/status", status)
    application.router.add_get("/notes", notes)
