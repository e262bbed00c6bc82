"""TLS material for gRPC: read PEM files named in configs into grpc credentials."""

from __future__ import annotations

import pathlib
from dataclasses import dataclass

import grpc

from fleetlog.common.errors import ConfigError


@dataclass(frozen=True)
class TlsFiles:
    """A config's `tls = { ca, cert, key }` section (paths, all optional): the agent's and the
    syslog forwarder's client side; the collector's listener extends it (ServerTlsConfig)."""

    ca: str | None = None
    cert: str | None = None
    key: str | None = None


def _read(path: str | None, what: str) -> bytes | None:
    if not path:
        return None
    try:
        return pathlib.Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what}: {exc.strerror}") from None


def server_credentials(files: TlsFiles, require_client_cert: bool) -> grpc.ServerCredentials:
    cert, key = _read(files.cert, "TLS certificate"), _read(files.key, "TLS key")
    if cert is None or key is None:
        raise ConfigError("tls: a server needs both cert and key")
    ca = _read(files.ca, "TLS CA")
    if require_client_cert and ca is None:
        raise ConfigError("tls: require_client_cert needs a ca to check client certificates against")
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca,
                                       require_client_auth=require_client_cert)


def channel_credentials(files: TlsFiles) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=_read(files.ca, "TLS CA"),
        private_key=_read(files.key, "TLS key"),
        certificate_chain=_read(files.cert, "TLS certificate"),
    )
