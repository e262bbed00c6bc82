"""The CLI's connection to a collector, and translation of gRPC failures into fleetlog errors."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc

from fleetlog.common.errors import AuthError, FleetlogError, TransportError, UsageError
from fleetlog.common.pb.fleetlog.v1 import fleetlog_pb2 as pb
from fleetlog.common.pb.fleetlog.v1 import fleetlog_pb2_grpc as pb_grpc
from fleetlog.common.tls import TlsFiles, channel_credentials

DEFAULT_COLLECTOR = "127.0.0.1:7433"


@dataclass
class Connection:
    address: str
    token: str | None
    tls: TlsFiles | None

    @classmethod
    def from_args(cls, args) -> Connection:
        address = args.collector or os.environ.get("FLEETLOG_COLLECTOR") or DEFAULT_COLLECTOR
        token_file = args.token_file or os.environ.get("FLEETLOG_TOKEN_FILE")
        token = None
        if token_file:
            try:
                token = pathlib.Path(token_file).read_text().strip()
            except OSError as exc:
                raise UsageError(f"--token-file: cannot read {token_file}: {exc.strerror}") from None
        tls = TlsFiles(args.ca, args.cert, args.key) if (args.ca or args.cert or args.key) else None
        return cls(address, token, tls)

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()

    @contextlib.contextmanager
    def channel(self) -> Iterator[grpc.Channel]:
        options = [("grpc.max_receive_message_length", 64 * 1024 * 1024)]
        if self.tls:
            channel = grpc.secure_channel(self.address, channel_credentials(self.tls), options=options)
        else:
            channel = grpc.insecure_channel(self.address, options=options)
        try:
            with translate_errors(self.address):
                yield channel
        finally:
            channel.close()

    def query(self, channel: grpc.Channel) -> pb_grpc.QueryStub:
        return pb_grpc.QueryStub(channel)

    def admin(self, channel: grpc.Channel) -> pb_grpc.AdminStub:
        return pb_grpc.AdminStub(channel)

    def search(self, request: pb.SearchRequest) -> Iterator[dict[str, Any]]:
        """The events of one Search, each as it arrives (the collector streams pages)."""
        with self.channel() as channel:
            for page in self.query(channel).Search(request, metadata=self.metadata):
                for text in page.events_json:
                    yield json.loads(text)

    def bundle(self, request: pb.SearchRequest) -> Iterator[pb.BundlePage]:
        """The pages of one Bundle: masked events.jsonl lines, the last page the evidence."""
        with self.channel() as channel:
            yield from self.query(channel).Bundle(request, metadata=self.metadata)


@contextlib.contextmanager
def translate_errors(address: str) -> Iterator[None]:
    try:
        yield
    except grpc.RpcError as exc:
        code = exc.code() if hasattr(exc, "code") else None
        details = exc.details() if hasattr(exc, "details") else str(exc)
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            raise UsageError(details) from None
        if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
            raise AuthError(f"collector {address}: {details}") from None
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            raise TransportError(f"cannot reach the collector at {address}: {details}") from None
        raise FleetlogError(f"collector {address}: {details}") from None
