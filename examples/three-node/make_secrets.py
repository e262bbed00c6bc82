"""Certificates and tokens for the three-node example (and a template for a real install).

    python examples/three-node/make_secrets.py [--out DIR] [--collector-name NAME ...]

Writes to DIR (default examples/three-node/secrets):
  ca.pem, ca.key             a private CA (keep ca.key offline in a real install)
  collector.crt/.key         the collector's server certificate (SANs: localhost, 127.0.0.1 and
                             every --collector-name, e.g. the collector's DNS name and IP)
  web-1.token, web-2.token   agent tokens (role agent, namespace default)
  ops.token                  an operator token (role admin) for the fleetlog CLI
  tokens.toml                what the collector's tokens_file holds: names, roles and SHA-256
                             hashes — never the tokens themselves
Key and token files are created mode 0600.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import ipaddress
import os
import pathlib
import secrets

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

HERE = pathlib.Path(__file__).resolve().parent
TOKENS = [("web-1", "agent"), ("web-2", "agent"), ("ops", "admin")]


def _private(path: pathlib.Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_ca(out: pathlib.Path, days: int) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fleetlog example CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    (out / "ca.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _private(out / "ca.key", _pem_key(key))
    return cert, key


def make_server_cert(out: pathlib.Path, ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey,
                     names: list[str], days: int) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for name in ["localhost", "127.0.0.1", *names]:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            sans.append(x509.DNSName(name))
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0] if names else "collector")]))
            .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .sign(ca_key, hashes.SHA256()))
    (out / "collector.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _private(out / "collector.key", _pem_key(key))


def make_tokens(out: pathlib.Path) -> None:
    lines = []
    for name, role in TOKENS:
        token = secrets.token_urlsafe(32)
        _private(out / f"{name}.token", (token + "\n").encode())
        namespaces = '["default"]' if role == "agent" else "[]"
        lines.append(f'[[tokens]]\nname = "{name}"\nrole = "{role}"\nnamespaces = {namespaces}\n'
                     f'sha256 = "{hashlib.sha256(token.encode()).hexdigest()}"\n')
    (out / "tokens.toml").write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=HERE / "secrets")
    parser.add_argument("--collector-name", action="append", default=[],
                        help="a DNS name or IP the agents use to reach the collector (repeatable)")
    parser.add_argument("--days", type=int, default=365, help="certificate lifetime")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    ca, ca_key = make_ca(args.out, args.days)
    make_server_cert(args.out, ca, ca_key, args.collector_name, args.days)
    make_tokens(args.out)
    print(f"wrote CA, collector certificate and tokens for {', '.join(n for n, _ in TOKENS)} to {args.out}")


if __name__ == "__main__":
    main()
