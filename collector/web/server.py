"""The console's HTTP server: aiohttp on the collector's own asyncio loop, beside grpc.aio, so the
views call the running collector (collector/running.py) directly: the same query engine, follow
path and writer as the gRPC handlers (no second process, no copy of the query code).

HTTPS with the collector's certificate when `[tls]` is set (client certificates requested when
mTLS is on); every response carries a Content-Security-Policy without inline scripts and with no
origin but the collector's own.
"""

from __future__ import annotations

import asyncio
import logging
import math
import pathlib
import ssl
from typing import TYPE_CHECKING, Any

import jinja2
from aiohttp import web

from fleetlog.collector.auth_failures import TOO_MANY_FAILURES
from fleetlog.collector.config import ServerTlsConfig, WebConfig
from fleetlog.collector.host_names import AllowedHosts
from fleetlog.collector.web import api, export_jobs, hosts, pages, settings_api, settings_page
from fleetlog.collector.web.auth import COOKIE, ConsoleAuth, Denied
from fleetlog.collector.web.context import AUTH_KEY, COLLECTOR_KEY, TEMPLATES_KEY, NotSignedIn, collector_of
from fleetlog.common.errors import AuthError, ConfigError, QueryTimeout, StorageError, UsageError

if TYPE_CHECKING:
    from fleetlog.collector.running import RunningCollector

log = logging.getLogger("fleetlog.collector.web")
HERE = pathlib.Path(__file__).resolve().parent

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",   # "no-referrer" would make browsers send `Origin: null`
}


def _is_api(request: web.Request) -> bool:
    return request.path.startswith("/api/")


def _error(request: web.Request, status: int, message: str) -> web.StreamResponse:
    if _is_api(request):
        return web.json_response({"error": message}, status=status)
    return pages.render_error(request, status, message)


def _operation(request: web.Request) -> tuple[str, dict[str, str]]:
    """What a denial names: the route's pattern (`/api/v1/trace/{request_id}`), so that varying
    the path does not make each request a new denial; the raw path goes into its fields."""
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else request.path
    return f"web {request.method} {route}", {"path": request.path[:200]}


def _carries_credentials(request: web.Request) -> bool:
    return ("Authorization" in request.headers or COOKIE in request.cookies
            or (request.method == "POST" and request.path == "/signin"))


@web.middleware
async def errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Domain errors become HTTP statuses with one-line messages (the CLI's own for filters);
    never a traceback. An address with too many failed authentications gets 429 for anything
    that carries credentials, unchecked (collector/auth_failures.py)."""
    collector = collector_of(request)
    ip = request.remote or ""
    if _carries_credentials(request) and (wait := collector.authentication_retry_after(ip)):
        what, fields = _operation(request)
        await collector.record_denial(None, what, TOO_MANY_FAILURES, None, ip=ip, fields=fields)
        # Plain text for pages too: the error page would look at the credentials to show who is asking.
        message, headers = f"{TOO_MANY_FAILURES}; try again in {math.ceil(wait)} s", {"Retry-After": str(math.ceil(wait))}
        if _is_api(request):
            return web.json_response({"error": message}, status=429, headers=headers)
        return web.Response(status=429, text=message + "\n", headers=headers)
    try:
        return await handler(request)
    except NotSignedIn:
        if _is_api(request):
            return web.json_response({"error": "sign in: send Authorization: Bearer TOKEN or the session cookie"},
                                     status=401, headers={"WWW-Authenticate": 'Bearer realm="fleetlog"'})
        return web.Response(status=302, headers={"Location": pages.signin_url(request)})
    except AuthError as exc:
        collector.failed_authentication(ip)
        what, fields = _operation(request)
        await collector.record_denial(None, what, str(exc), None, ip=ip, fields=fields)
        return _error(request, 401, str(exc))
    except Denied as exc:
        what, fields = _operation(request)
        await collector.record_denial(exc.caller, what, str(exc), None, ip=ip, fields=fields)
        return _error(request, 403, str(exc))
    except UsageError as exc:
        return _error(request, 400, str(exc))
    except QueryTimeout as exc:
        log.warning("console: %s %s: %s", request.method, request.path, exc)
        return _error(request, 503, str(exc))
    except StorageError as exc:
        log.error("console: %s", exc)
        return _error(request, 503, str(exc))


async def _headers(request: web.Request, response: web.StreamResponse) -> None:
    """Every response, streamed ones included, gets the security headers."""
    response.headers.update(SECURITY_HEADERS)
    if not request.path.startswith("/static/"):
        response.headers.setdefault("Cache-Control", "no-store")


def build_application(collector: RunningCollector, auth: ConsoleAuth,
                      allowed_hosts: AllowedHosts) -> web.Application:
    # The Host check comes first: a rebound name gets nothing, not even a session.
    application = web.Application(middlewares=[hosts.middleware(allowed_hosts), errors],
                                  client_max_size=1024 * 1024)
    application[COLLECTOR_KEY] = collector
    application[AUTH_KEY] = auth
    application[TEMPLATES_KEY] = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True)
    application.on_response_prepare.append(_headers)
    pages.add_routes(application)
    settings_page.add_routes(application)
    api.add_routes(application)
    settings_api.add_routes(application)
    application.router.add_static("/static/", HERE / "static")
    return application


def _ssl_context(tls: ServerTlsConfig, mtls: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(tls.cert or "", tls.key or "")
        if tls.ca and mtls:
            context.load_verify_locations(tls.ca)
            # Optional at the TLS layer: a browser without a certificate still reaches the
            # sign-in page; a presented certificate must verify against the CA.
            context.verify_mode = ssl.CERT_OPTIONAL
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"collector.toml: tls: cannot load the certificate for the console: {exc}") from None
    return context


class WebConsole:
    """Started and stopped with the collector (collector/app.py)."""

    def __init__(self, collector: RunningCollector, config: WebConfig, tls: ServerTlsConfig | None):
        self.collector = collector
        self.config = config
        self.tls = tls
        # Session cookies are `Secure` when the console speaks HTTPS.
        self.auth = ConsoleAuth(collector.authenticator, config.session_lifetime, secure=tls is not None)
        self.runner: web.AppRunner | None = None
        self.port = 0

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"

    def allowed_hosts(self) -> AllowedHosts:
        try:
            return AllowedHosts.for_console(self.config.listen, self.collector.node_name,
                                                  self.tls.cert if self.tls is not None else None,
                                                  self.config.allowed_hosts)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"collector.toml: tls.cert: cannot read the certificate's names for the console: "
                              f"{exc}") from None

    async def start(self) -> None:
        host, _, port = self.config.listen.rpartition(":")
        host = host.strip("[]")
        context = _ssl_context(self.tls, self.auth.mtls) if self.tls is not None else None
        application = build_application(self.collector, self.auth, self.allowed_hosts())
        export_jobs.install(application, self.config.export_min_free)
        self.runner = web.AppRunner(application, access_log=None, shutdown_timeout=2.0)
        await self.runner.setup()
        site = web.TCPSite(self.runner, host, int(port), ssl_context=context)
        try:
            await site.start()
        except OSError as exc:
            await self.runner.cleanup()
            raise ConfigError(f"collector.toml: web.listen: cannot listen on {self.config.listen}: "
                              f"{exc.strerror or exc}") from None
        server = site._server   # the bound port when listen says :0
        sockets = server.sockets if isinstance(server, asyncio.Server) else []
        self.port = sockets[0].getsockname()[1] if sockets else int(port)
        log.info("web console on %s://%s:%d/", self.scheme, host, self.port)

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
