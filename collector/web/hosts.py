"""Which names the console answers to: a defence against DNS rebinding.

A page on attacker.example can make its own name resolve to 127.0.0.1 and then read the loopback
console with the browser's help; the browser still sends `Host: attacker.example`. So the console
answers only requests whose Host header is one of its own names, before any view runs (and
before a session or CSRF token is handed out): the host of `[web] listen` (unless it is a
wildcard address), localhost, 127.0.0.1 and ::1, the collector's node_name, the names and
addresses of the TLS certificate when `[tls]` is set, and every name in `[web] allowed_hosts`.
Other hosts get 421 Misdirected Request with one line. The port is not compared: a rebound page
reaches the console's own port anyway.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from fleetlog.collector.host_names import AllowedHosts, host_of_header

log = logging.getLogger("fleetlog.collector.web")


def middleware(allowed: AllowedHosts) -> Any:
    @web.middleware
    async def check_host(request: web.Request, handler: Any) -> web.StreamResponse:
        raw = request.headers.get("Host")
        host = host_of_header(raw) if raw is not None else None
        if host is not None and allowed.allows(host):
            return await handler(request)
        message = (f"this console does not answer to host {raw[:100]!r} (add it to [web] allowed_hosts)"
                   if raw else "a Host header is required")
        log.debug("console: refused %s %s: %s", request.method, request.path, message)
        if request.path.startswith("/api/"):
            return web.json_response({"error": message}, status=421)
        return web.Response(status=421, text=message + "\n")
    return check_host
