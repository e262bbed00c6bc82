"""Who is using the console: a bearer token (API), a session cookie (pages), a verified client
certificate, or — with neither tokens nor mTLS configured, on loopback — the same trusted
anonymous caller the gRPC side accepts.

Sessions live in the collector's memory (a restart signs everyone out) and hold the caller, never
the token. A POST made with ambient credentials (the cookie) must carry the session's CSRF token;
a bearer token is not ambient, so API clients need none. Failed sign-ins are audited and slowed
down per client address.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass

from aiohttp import web
from cryptography import x509

from fleetlog.collector.identity import Authenticator, Caller
from fleetlog.common.errors import AuthError

COOKIE = "fleetlog_session"
CSRF_HEADER = "X-CSRF-Token"
MAX_SESSIONS = 10_000
# A failed sign-in waits 0.5 s, doubling with each further failure from the same address (up to
# 8 s); an address's failures are forgotten after FAILURE_MEMORY seconds without one.
FIRST_DELAY, MAX_DELAY, FAILURE_MEMORY = 0.5, 8.0, 900.0


class Denied(Exception):
    """The caller is known but may not do this (HTTP 403; an audit event)."""

    def __init__(self, message: str, caller: Caller | None = None):
        super().__init__(message)
        self.caller = caller


@dataclass
class Session:
    id: str
    caller: Caller
    csrf: str
    expires: float


class Sessions:
    def __init__(self, lifetime: float):
        self.lifetime = lifetime
        self._by_id: dict[str, Session] = {}

    def create(self, caller: Caller) -> Session:
        now = time.time()
        if len(self._by_id) >= MAX_SESSIONS:   # bounded: drop the expired, then the oldest
            for sid in [s for s, v in self._by_id.items() if v.expires <= now] or \
                    sorted(self._by_id, key=lambda s: self._by_id[s].expires)[:MAX_SESSIONS // 10]:
                self._by_id.pop(sid, None)
        session = Session(secrets.token_urlsafe(32), caller, secrets.token_urlsafe(24), now + self.lifetime)
        self._by_id[session.id] = session
        return session

    def get(self, sid: str | None) -> Session | None:
        session = self._by_id.get(sid or "")
        if session is not None and session.expires <= time.time():
            del self._by_id[session.id]
            return None
        return session

    def end(self, sid: str | None) -> None:
        self._by_id.pop(sid or "", None)


class SignInThrottle:
    def __init__(self) -> None:
        self._failures: dict[str, tuple[int, float]] = {}

    def delay_after_failure(self, ip: str) -> float:
        now = time.monotonic()
        count, last = self._failures.get(ip, (0, now))
        count = 1 if now - last > FAILURE_MEMORY else count + 1
        self._failures[ip] = (count, now)
        if len(self._failures) > 10_000:
            self._failures = {k: v for k, v in self._failures.items() if now - v[1] < FAILURE_MEMORY}
        return min(FIRST_DELAY * 2 ** (count - 1), MAX_DELAY)

    def succeeded(self, ip: str) -> None:
        self._failures.pop(ip, None)


def client_ip(request: web.Request) -> str:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return str(peer[0]) if peer else ""


def certificate_name(request: web.Request) -> str | None:
    """CN, else the first DNS SAN, of the verified client certificate (as collector/identity.py
    reads it for gRPC)."""
    ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    if not der:
        return None
    cert = x509.load_der_x509_certificate(der)
    names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    if names and names[0].value:
        return str(names[0].value)
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    dns = sans.get_values_for_type(x509.DNSName)
    return dns[0] if dns else None


def bearer_token(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


class ConsoleAuth:
    """Resolves each request's caller; the sign-in bookkeeping."""

    def __init__(self, authenticator: Authenticator, lifetime: float, secure: bool):
        self.authenticator = authenticator
        self.sessions = Sessions(lifetime)
        self.throttle = SignInThrottle()
        self.secure = secure

    @property
    def open(self) -> bool:
        return self.authenticator.open

    @property
    def mtls(self) -> bool:
        """Client certificates are requested (and may sign a caller in)."""
        return self.authenticator.mtls

    def session_of(self, request: web.Request) -> Session | None:
        return self.sessions.get(request.cookies.get(COOKIE))

    def caller(self, request: web.Request) -> Caller | None:
        """The request's caller, or None (not signed in). AuthError for a bad bearer token;
        Denied when the identity may not read (agents)."""
        ip = client_ip(request)
        token = bearer_token(request)
        caller: Caller | None = None
        if token is not None and not self.open:
            caller = self.authenticator.token_caller(token, ip)
        elif (session := self.session_of(request)) is not None:
            caller = session.caller
            if caller.how == "token" and not self.authenticator.still_valid(caller):
                # The token was revoked (or its role changed) since the sign-in: the session ends.
                self.sessions.end(session.id)
                return None
        elif self.authenticator.mtls and (name := certificate_name(request)):
            caller = self.authenticator.certificate_caller(name, ip)
        elif self.open:
            caller = Caller("anonymous", "trusted", ip, None, "trusted")
        if caller is not None and not caller.can_read:
            raise Denied(f"role {caller.role!r} may not use the console", caller)
        return caller

    def sign_in(self, token: str, request: web.Request) -> Caller:
        """A token typed into the sign-in page, or (empty token) the verified client certificate."""
        ip = client_ip(request)
        if token:
            caller = self.authenticator.token_caller(token, ip)
        elif self.authenticator.mtls and (name := certificate_name(request)):
            caller = self.authenticator.certificate_caller(name, ip)
        else:
            raise AuthError("no token given")
        if not caller.can_read:
            raise Denied(f"role {caller.role!r} may not use the console", caller)
        return caller

    async def slow_down(self, request: web.Request) -> None:
        await asyncio.sleep(self.throttle.delay_after_failure(client_ip(request)))

    def set_cookie(self, response: web.StreamResponse, session: Session) -> None:
        response.set_cookie(COOKIE, session.id, max_age=int(self.sessions.lifetime), path="/",
                            httponly=True, samesite="Strict", secure=self.secure)

    def check_csrf(self, request: web.Request, form_value: str | None = None) -> None:
        """A POST with the session cookie must echo the session's CSRF token (header or form)."""
        if bearer_token(request) is not None and not self.open:
            return
        session = self.session_of(request)
        sent = request.headers.get(CSRF_HEADER) or form_value or ""
        if session is None or not secrets.compare_digest(sent, session.csrf):
            raise Denied("missing or wrong CSRF token (reload the page)", session.caller if session else None)
