"""Signed checkpoints and signing keys (contract §4.7), shared by the collector and offline `verify`.

A checkpoint says "collector C had chained its events up to seq S, and link(S) was H, at time T,
signed with key K". The signed bytes are the canonical JSON (sorted keys, compact, UTF-8) of

    {"chain_hash": H (64 hex), "collector": C, "key_id": K, "seq": S, "time": T (µs since epoch),
     "type": "fleetlog-checkpoint/1"}

signed with Ed25519. `type` keeps a checkpoint signature from being valid for anything else.
A key id is the first 16 hex digits of SHA-256 over the raw 32-byte public key.
docs/tamper-evidence.md describes the format for third-party verifiers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
from dataclasses import dataclass
from typing import Any, ClassVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

CHECKPOINT_TYPE = "fleetlog-checkpoint/1"
# The permanent-tier event that records a change of signing key (contract §4.6).
ROTATION_ACTION = "Collector.SigningKey.Rotate"
# What the retention purge records (issue 5): verify accepts a gap in seq only inside its ranges.
PURGE_ACTION = "Collector.Retention.Purge"


class KeyFileError(ValueError):
    """A key file is missing, unreadable or not an Ed25519 key (the message says which)."""


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    return hashlib.sha256(raw_public(key)).hexdigest()[:16]


def public_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def private_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def parse_public_pem(text: str | bytes, what: str = "public key") -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(text.encode() if isinstance(text, str) else text)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{what}: not a PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{what}: not an Ed25519 public key")
    return key


def load_public_key(path: str) -> Ed25519PublicKey:
    """A public key from a PEM file; a private key file is accepted too (its public half)."""
    try:
        data = pathlib.Path(path).read_bytes()
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read the public key: {exc.strerror}") from None
    if not data.lstrip().startswith(b"-----BEGIN "):
        raise KeyFileError(f"{path}: not a PEM public key")
    if data.lstrip().startswith(b"-----BEGIN PRIVATE KEY"):
        return load_private_key(path).public_key()
    return parse_public_pem(data, path)


def load_private_key(path: str) -> Ed25519PrivateKey:
    try:
        data = pathlib.Path(path).read_bytes()
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read the signing key: {exc.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{path}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: not an Ed25519 private key")
    return key


def write_key_pair(directory: str, name: str = "signing") -> tuple[str, str, Ed25519PrivateKey]:
    """Create `name.key` (mode 0600, never readable by others, not even briefly) and `name.pub`.
    Refuses to overwrite an existing key: losing a signing key would orphan its checkpoints."""
    os.makedirs(directory, exist_ok=True)
    private_path = os.path.join(directory, f"{name}.key")
    public_path = os.path.join(directory, f"{name}.pub")
    key = Ed25519PrivateKey.generate()
    try:
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyFileError(f"{private_path}: already exists; not overwriting a signing key") from None
    except OSError as exc:
        raise KeyFileError(f"{private_path}: cannot create: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(private_pem(key))
        handle.flush()
        os.fsync(handle.fileno())
    with open(public_path, "w", encoding="ascii") as handle:
        handle.write(public_pem(key.public_key()))
    return private_path, public_path, key


class SignedStatement:
    """What checkpoints and bundle attestations share: the signed bytes are the canonical JSON
    (sorted keys, compact, UTF-8) of the dataclass's fields except `signature`, plus `type`."""

    TYPE = ""
    signature: str
    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]   # each subclass is a dataclass

    def statement(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "signature"}

    def message(self) -> bytes:
        return json.dumps({**self.statement(), "type": self.TYPE}, sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False).encode()

    def signed(self, key: Ed25519PrivateKey) -> Any:
        return dataclasses.replace(self, signature=key.sign(self.message()).hex())

    def signature_valid(self, key: Ed25519PublicKey) -> bool:
        try:
            key.verify(bytes.fromhex(self.signature), self.message())
        except (InvalidSignature, ValueError):
            return False
        return True

    def to_json(self) -> dict[str, Any]:
        return {"type": self.TYPE, **self.statement(), "signature": self.signature}


@dataclass(frozen=True)
class Checkpoint(SignedStatement):
    TYPE = CHECKPOINT_TYPE
    collector: str
    seq: int
    chain_hash: str      # hex of link(seq)
    time: int            # µs since the epoch
    key_id: str
    signature: str = ""  # hex of the Ed25519 signature

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Checkpoint:
        try:
            return cls(str(data["collector"]), int(data["seq"]), str(data["chain_hash"]), int(data["time"]),
                       str(data["key_id"]), str(data["signature"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed checkpoint: {exc}") from None
