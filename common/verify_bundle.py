"""`fleetlog verify --bundle FILE`: a bundle checked with nothing but itself.

In order: the public keys in the bundle; the manifest's checkpoint, signed by one of them (the
collector's chain state when the bundle was made); the collector's attestation of digests.txt
(common/bundle_attestation.py), signed by the same collector; then every line of events.jsonl
against digests.txt — seq and digest, in order, none missing or extra; then the manifest's counts.
The first disagreement fails with the seq it concerns. A bundle is only as trustworthy as the key
it holds: whoever makes up events can sign them with a key of their own, so `--public-key` pins
the collector's key, taken from elsewhere than the bundle. What a bundle cannot show: events the
filters left out, or the unmasked values (only the collector's store has those; `verify --db`).
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from fleetlog.common.bundle_attestation import Attestation, line_digest
from fleetlog.common.checkpoints import Checkpoint, KeyFileError, key_id, parse_public_pem
from fleetlog.common.errors import UsageError, VerificationError
from fleetlog.common.verify import Report, Tampered


def _members(path: str) -> dict[str, bytes]:
    try:
        with tarfile.open(path, "r:gz") as tar:
            return {m.name: file.read() for m in tar.getmembers()
                    if m.isfile() and (file := tar.extractfile(m)) is not None}
    except FileNotFoundError:
        raise UsageError(f"--bundle: {path} does not exist") from None
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise UsageError(f"--bundle: {path} is not a bundle written by `fleetlog bundle --compress` ({exc})") from None


def _keys(files: dict[str, bytes]) -> dict[str, Ed25519PublicKey]:
    keys = {}
    for name, data in files.items():
        if name.endswith(".pub"):
            try:
                key = parse_public_pem(data, name)
            except KeyFileError as exc:
                raise VerificationError(f"bundle: {exc}") from None
            keys[key_id(key)] = key
    if not keys:
        raise VerificationError("bundle: no public key inside (signing.pub); nothing to verify against")
    return keys


def _signed_by(keys: dict[str, Ed25519PublicKey], item: Any, what: str) -> None:
    key = keys.get(item.key_id)
    if key is None:
        raise VerificationError(f"bundle: the {what} is signed by key {item.key_id}, which the bundle does not hold")
    if not item.signature_valid(key):
        raise VerificationError(f"bundle: the {what}'s signature is not valid for key {item.key_id}")


def _pinned(keys: dict[str, Ed25519PublicKey], pinned: list[Ed25519PublicKey]) -> dict[str, Ed25519PublicKey]:
    """The keys the operator gave (--public-key), once the bundle's own signing.pub is one of them:
    a bundle re-signed with another key then fails here, however consistent it is inside."""
    expected = {key_id(key): key for key in pinned}
    embedded = [name for name in keys if name not in expected]
    if embedded:
        raise VerificationError(f"bundle: signed with key {embedded[0]}, not the key given with --public-key "
                                f"({', '.join(expected)})")
    return expected


def verify_bundle(path: str, pinned: list[Ed25519PublicKey] | None = None) -> Report:
    """Check a bundle; with `pinned` keys (the collector's signing.pub, from elsewhere than the
    bundle), every key the bundle holds must be one of them."""
    files = _members(path)
    for name in ("manifest.json", "events.jsonl", "digests.txt"):
        if name not in files:
            raise VerificationError(f"bundle: {name} is missing")
    try:
        manifest = json.loads(files["manifest.json"])
    except ValueError as exc:
        raise VerificationError(f"bundle: manifest.json is not JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise VerificationError("bundle: manifest.json is not a JSON object")
    keys = _keys(files)
    if pinned:
        keys = _pinned(keys, pinned)
    report = Report()

    if manifest.get("checkpoint"):
        try:
            checkpoint = Checkpoint.from_json(manifest["checkpoint"])
        except ValueError as exc:
            raise VerificationError(f"bundle: {exc}") from None
        _signed_by(keys, checkpoint, "checkpoint")
        report.checkpoints, report.last_checkpoint_seq = 1, checkpoint.seq
    else:
        report.notes.append("the bundle holds no signed checkpoint (made before the collector signed any)")

    if not manifest.get("attestation"):
        raise VerificationError("bundle: manifest.json has no attestation; the events cannot be checked")
    try:
        attestation = Attestation.from_json(manifest["attestation"])
    except ValueError as exc:
        raise VerificationError(f"bundle: {exc}") from None
    _signed_by(keys, attestation, "attestation")
    if manifest.get("checkpoint") and attestation.collector != checkpoint.collector:
        raise VerificationError(f"bundle: attested by {attestation.collector}, checkpoint of {checkpoint.collector}")
    if hashlib.sha256(files["digests.txt"]).hexdigest() != attestation.digests_sha256:
        raise VerificationError("bundle: digests.txt is not the one the collector signed")

    digests = files["digests.txt"].decode("ascii", errors="replace").splitlines()
    events = files["events.jsonl"].split(b"\n")
    if events and events[-1] == b"":
        events.pop()
    if len(digests) != attestation.events:
        raise VerificationError(f"bundle: digests.txt has {len(digests)} lines, the attestation {attestation.events}")
    for index, entry in enumerate(digests):
        seq_text, _, digest = entry.partition(" ")
        seq = int(seq_text) if seq_text.isdigit() else 0
        if index >= len(events):
            raise Tampered(seq, "event removed from events.jsonl")
        line = events[index]
        try:
            event_seq = int(json.loads(line).get("seq", 0))
        except (ValueError, AttributeError):
            raise Tampered(seq, "events.jsonl line is not a JSON event") from None
        if event_seq != seq:
            raise Tampered(seq, f"events.jsonl has seq {event_seq} where the collector attested seq {seq} "
                                "(an event removed, inserted or moved)")
        if line_digest(line) != digest:
            raise Tampered(seq, "event changed since the collector attested the bundle")
    if len(events) > len(digests):
        raise VerificationError(f"bundle: {len(events) - len(digests)} events in events.jsonl that the collector "
                                "did not attest (inserted)")
    counts = manifest.get("counts")
    counted = counts.get("events") if isinstance(counts, dict) else None
    if counted != len(events):
        raise VerificationError(f"bundle: manifest.json counts {counted} events, events.jsonl holds {len(events)}")
    report.events = len(events)
    return report
