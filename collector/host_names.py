"""The names the web console answers to (a defence against DNS rebinding): parsing a Host
header, checking `[web] allowed_hosts` entries, and the names of a TLS certificate. Plain code
without aiohttp, so collector.toml's validation can use it where the console extra is absent;
collector/web/hosts.py applies it to every request.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from cryptography import x509

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARD_ADDRESSES = ("", "0.0.0.0", "::", "*")
_LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")


def _ip(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def _is_dns_name(name: str) -> bool:
    labels = name.split(".")
    return len(name) <= 253 and all(_LABEL.match(label) for label in labels)


def host_name_problem(name: str) -> str | None:
    """Why `name` cannot be an allowed_hosts entry, or None: a DNS name, `*.` and a domain (its
    subdomains, one label deep), or an IP address; no scheme, port or path."""
    text = name.strip().lower()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if _ip(text) is not None:
        return None
    text = text.removeprefix("*.")
    if not text or not _is_dns_name(text.rstrip(".")):
        return f"expected a host name or IP address (no scheme, port or path), got {name!r}"
    return None


def _normal(name: str) -> str:
    text = name.strip().lower()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    return _ip(text) or text.rstrip(".")


def host_of_header(value: str) -> str | None:
    """`example.com:8433` -> example.com, `[::1]:8433` -> ::1; None for what is not a host."""
    text = value.strip()
    if text.startswith("["):
        inside, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not (rest.startswith(":") and rest[1:].isascii() and rest[1:].isdigit())):
            return None
        return _ip(inside)
    name, colon, port = text.rpartition(":")
    if colon and port.isascii() and port.isdigit() and ":" not in name:
        text = name
    elif ":" in text:
        return None
    return _normal(text) if text and "*" not in text and host_name_problem(text) is None else None


def certificate_names(cert_path: str) -> list[str]:
    """The DNS names and IP addresses of a PEM certificate (CN included), as a browser checks them."""
    with open(cert_path, "rb") as handle:
        cert = x509.load_pem_x509_certificate(handle.read())
    names = [str(a.value) for a in cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names += sans.get_values_for_type(x509.DNSName)
        names += [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        pass
    return [n for n in names if host_name_problem(n) is None]


class AllowedHosts:
    """Exact names and addresses, and `*.domain` patterns (one more label, as in certificates)."""

    def __init__(self, names: Iterable[str]):
        normal = {_normal(n) for n in names if n.strip().strip("[]") not in WILDCARD_ADDRESSES}
        self.exact = frozenset(n for n in normal if not n.startswith("*."))
        self.domains = frozenset(n[1:] for n in normal if n.startswith("*."))   # ".example.com"

    def allows(self, host: str) -> bool:
        if host in self.exact:
            return True
        label, dot, rest = host.partition(".")
        return bool(dot and label and f".{rest}" in self.domains)

    @classmethod
    def for_console(cls, listen: str, node_name: str, cert_path: str | None,
                    configured: Iterable[str]) -> AllowedHosts:
        names = [listen.rpartition(":")[0].strip("[]"), *LOOPBACK_NAMES, node_name, *configured]
        if cert_path:
            names += certificate_names(cert_path)
        return cls(names)
