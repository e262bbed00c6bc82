"""Who is calling (contract §4.1): mTLS client certificate, bearer token, or — only without either,
on loopback — the name the agent gives itself.

Tokens live only with their holders; tokens_file keeps each one's SHA-256, its name, role and
namespaces. Identity never comes from an event payload.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any, Literal

import grpc
from cryptography import x509

from fleetlog.collector.internal import COLLECTOR_NAMESPACE
from fleetlog.common.config import FieldError, load_config
from fleetlog.common.errors import AuthError, UsageError

Role = Literal["agent", "admin", "auditor", "namespace-admin", "namespace-auditor"]
READ_ROLES = {"admin", "auditor", "namespace-admin", "namespace-auditor"}
NAMESPACED_ROLES = {"agent", "namespace-admin", "namespace-auditor"}


@dataclass(frozen=True)
class TokenEntry:
    name: str
    sha256: str
    role: Role
    namespaces: tuple[str, ...] = ()
    relay: bool = False      # may send events it received from others (contract §10); agents only

    def validate(self) -> None:
        digest = self.sha256.strip().lower()
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise FieldError("sha256", "expected the 64 hex digits of the token's SHA-256, not the token itself")
        if not self.name:
            raise FieldError("name", "must not be empty")
        if self.relay and self.role != "agent":
            raise FieldError("relay", f"only an agent relays events; role {self.role!r} sends none")
        if COLLECTOR_NAMESPACE in self.namespaces:
            raise FieldError("namespaces", f"{COLLECTOR_NAMESPACE!r} holds the collector's own events, which only "
                             "admin and auditor read; no token may list it")


@dataclass(frozen=True)
class TokensFile:
    tokens: tuple[TokenEntry, ...] = ()


@dataclass(frozen=True)
class Caller:
    """An authenticated peer. `namespaces` None = every namespace."""

    name: str
    role: str
    ip: str
    namespaces: tuple[str, ...] | None = None
    how: str = "trusted"   # "mtls" | "token" | "trusted"
    may_relay: bool = False  # relayed chunks accepted: a tokens.toml entry's relay, or loopback trust

    @property
    def can_ingest(self) -> bool:
        return self.role in ("agent", "trusted")

    @property
    def can_read(self) -> bool:
        return self.role in READ_ROLES or self.role == "trusted"

    @property
    def can_note(self) -> bool:
        return self.role in ("admin", "auditor", "namespace-admin", "trusted")


def load_tokens(path: str) -> dict[str, TokenEntry]:
    """sha256 hex -> entry; ConfigError naming the file and key on any problem."""
    parsed = load_config(TokensFile, path)
    by_hash: dict[str, TokenEntry] = {}
    for entry in parsed.tokens:
        by_hash[entry.sha256.strip().lower()] = entry
    return by_hash


def peer_ip(context: grpc.aio.ServicerContext) -> str:
    """"ipv4:127.0.0.1:5000" -> "127.0.0.1"; "ipv6:[::1]:5000" -> "::1"."""
    peer = context.peer() or ""
    kind, _, rest = peer.partition(":")
    if kind == "ipv6":
        return rest.rsplit(":", 1)[0].strip("[]").replace("%5B", "").replace("%5D", "")
    if kind == "ipv4":
        return rest.rsplit(":", 1)[0]
    return rest or peer


def _cert_identity(context: grpc.aio.ServicerContext) -> str | None:
    """The verified client certificate's CN, or else its first DNS SAN. gRPC reports an empty CN
    as b"" and mixes SAN types in x509_subject_alternative_name, so the DNS names are read from
    the certificate itself, in their order."""
    auth = context.auth_context() or {}
    common_name = next((v.decode() for v in auth.get("x509_common_name", ()) if v), "")
    if common_name:
        return common_name
    for pem in auth.get("x509_pem_cert", ()):
        try:
            cert = x509.load_pem_x509_certificate(pem)
            names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except (ValueError, x509.ExtensionNotFound):
            continue
        dns = names.get_values_for_type(x509.DNSName)
        if dns:
            return dns[0]
    return None


def _bearer(context: grpc.aio.ServicerContext) -> str | None:
    return bearer_token(context.invocation_metadata())


def bearer_token(metadata: Any) -> str | None:
    for key, value in metadata or ():
        if key == "authorization":
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer" and token:
                return token.strip()
    return None


def _namespaces(entry: TokenEntry) -> tuple[str, ...] | None:
    """What a token may touch: None = everything (admin, auditor). An agent token that lists no
    namespaces writes only "default" — never everything by omission."""
    if entry.role not in NAMESPACED_ROLES:
        return None
    if entry.role == "agent" and not entry.namespaces:
        return ("default",)
    return tuple(entry.namespaces)


class Authenticator:
    def __init__(self, tokens: dict[str, TokenEntry] | None, mtls: bool):
        self.file_tokens = dict(tokens or {})
        self.tokens = tokens
        self.mtls = mtls
        # Fixed at start: tokens created through the settings (collector/settings/) never turn a
        # collector that trusts loopback callers into one that refuses them, or back.
        self._open = not tokens and not mtls
        # A certificate names a node; a tokens_file entry of the same name gives it another role
        # (e.g. an operator's client certificate with role auditor).
        self.roles_by_name = {entry.name: entry for entry in (tokens or {}).values()}
        self._uses: dict[str, int] = {}

    @property
    def open(self) -> bool:
        """No TLS client certificates and no tokens: loopback-only trust mode."""
        return self._open

    def set_stored_tokens(self, stored: tuple[TokenEntry, ...]) -> None:
        """The tokens kept in the settings store, beside tokens_file's (whose names win); swapped
        in one assignment, so a call sees the old set or the new one."""
        names = {e.name for e in self.file_tokens.values()}
        merged = dict(self.file_tokens)
        for entry in stored:
            if entry.name not in names:
                merged[entry.sha256.strip().lower()] = entry
        self.tokens = merged or None
        self.roles_by_name = {entry.name: entry for entry in merged.values()}

    def still_valid(self, caller: Caller) -> bool:
        """Whether the token a session was signed in with still exists with the same role (tokens
        made through the settings can be revoked while their sessions are open)."""
        entry = self.roles_by_name.get(caller.name)
        return entry is not None and entry.role == caller.role

    def take_uses(self) -> dict[str, int]:
        """Token name -> last use (µs) since the previous call (written to the store)."""
        uses, self._uses = self._uses, {}
        return uses

    def _entry(self, token: str) -> TokenEntry | None:
        # Looked up by the digest, not compared with every entry: what a lookup's time can tell a
        # caller is about the SHA-256 of the token it sent, which says nothing about a stored
        # token's secret, and a scan cost one compare per token (up to 1,000 stored) per call.
        digest = hashlib.sha256(token.encode()).hexdigest()
        entry = (self.tokens or {}).get(digest)
        if entry is not None and len(self._uses) < 100_000:
            self._uses[entry.name] = time.time_ns() // 1000
        return entry

    def refusal(self, metadata: Any) -> str | None:
        """Why a call with this metadata will be refused whatever it sends, or None. Checked
        before grpc decodes the request (collector/gate.py); a client certificate was already
        verified by the TLS handshake when mTLS is required. Same rules as authenticate()."""
        if self.open:
            return None
        token = bearer_token(metadata)
        if self.tokens and token is not None:
            return None if self._entry(token) is not None else "unknown token"
        if self.mtls:
            return None
        return "no valid credentials (token or client certificate) presented"

    def token_caller(self, token: str, ip: str) -> Caller:
        """The holder of a bearer token (gRPC metadata or the web console); AuthError if unknown."""
        entry = self._entry(token)
        if entry is None:
            raise AuthError("unknown token")
        return Caller(entry.name, entry.role, ip, _namespaces(entry), "token", entry.relay)

    def certificate_caller(self, name: str, ip: str) -> Caller:
        """The holder of a verified client certificate named `name` (CN or first DNS SAN)."""
        entry = self.roles_by_name.get(name)
        if entry is None:
            # A certificate identifies a node: it may ingest, not read, and — like an agent token
            # that lists none — only into "default": never every namespace by omission.
            # Nor may it relay: that takes an entry with relay = true.
            return Caller(name, "agent", ip, ("default",), "mtls")
        return Caller(name, entry.role, ip, _namespaces(entry), "mtls", entry.relay)

    def authenticate(self, context: grpc.aio.ServicerContext, claimed_name: str = "") -> Caller:
        ip = peer_ip(context)
        token = _bearer(context)
        if self.tokens and token is not None:
            return self.token_caller(token, ip)
        if self.mtls:
            name = _cert_identity(context)
            if name:
                return self.certificate_caller(name, ip)
        if self.open:
            return Caller(claimed_name or "anonymous", "trusted", ip, None, "trusted", may_relay=True)
        raise AuthError("no valid credentials (token or client certificate) presented")


class NamespaceRefused(Exception):
    """The caller may not use that namespace (HTTP 403, gRPC PERMISSION_DENIED; an audit event)."""


def note_namespace(caller: Caller, requested: str) -> str:
    """Where `caller`'s note goes: `requested` when the caller holds it; else its only namespace
    (a namespace-admin), or "default" for a caller of every namespace. UsageError when a caller
    of several namespaces names none; NamespaceRefused for one it does not hold."""
    requested = requested.strip()
    if requested == COLLECTOR_NAMESPACE:
        raise NamespaceRefused(f"namespace {COLLECTOR_NAMESPACE!r} is the collector's own; notes go elsewhere")
    if not requested:
        if caller.namespaces is None:
            return "default"
        if len(caller.namespaces) == 1:
            return caller.namespaces[0]
        raise UsageError(f"namespace: {caller.name} holds several namespaces ({', '.join(caller.namespaces)}); "
                         "name the note's")
    if caller.namespaces is not None and requested not in caller.namespaces:
        raise NamespaceRefused(f"may not write notes into namespace {requested!r}")
    return requested


def describe_denial(caller: Caller | None, what: str, why: Any) -> str:
    who = f"{caller.name} ({caller.role})" if caller else "unauthenticated peer"
    return f"denied {what} for {who}: {why}"
