"""The parts of a support bundle (`fleetlog bundle`, the console's bundle download): the events
with secrets masked and a digest line each, the counts, and the manifest that ties them to the
collector's signed checkpoint and attestation (`fleetlog verify --bundle` checks them)."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import tarfile
import time
from collections.abc import Iterable
from typing import Any, Protocol, TextIO

from fleetlog.common.masking import mask_event
from fleetlog.common.pb.fleetlog.v1 import fleetlog_pb2 as pb

BUNDLE_FORMAT = "fleetlog-bundle/1"


def line_digest(line: bytes) -> str:
    """The digest of one events.jsonl line in a bundle's digests.txt (what an attestation signs)."""
    return hashlib.sha256(line).hexdigest()[:32]


class Steps(Protocol):
    """Told of each event written (the CLI draws its progress from it)."""

    def step(self) -> None: ...


class Origin(Protocol):
    """Where the events came from: the collector's address as the manifest names it."""

    address: str


class BundleStats:
    def __init__(self) -> None:
        self.events = 0
        self.masked = 0
        self.by_level: dict[str, int] = {}
        self.by_host: dict[str, int] = {}
        self.first_time = self.last_time = ""
        self.first_seq = self.last_seq = 0

    def add(self, event: dict[str, Any], masked: bool) -> None:
        self.events += 1
        self.masked += masked
        self.by_level[event["level"]] = self.by_level.get(event["level"], 0) + 1
        self.by_host[event["host"]] = self.by_host.get(event["host"], 0) + 1
        if not self.first_time or event["time"] < self.first_time:
            self.first_time = event["time"]
        self.last_time = max(self.last_time, event["time"])
        self.first_seq = min(self.first_seq or event["seq"], event["seq"])
        self.last_seq = max(self.last_seq, event["seq"])


def masked_line(event: dict[str, Any]) -> tuple[str, bool]:
    """The events.jsonl line of an event, secrets masked; True when anything was masked. Only the
    collector calls it (Query.Bundle, the console's download): a bundle's lines are its bytes."""
    masked, changed = mask_event(event)
    return json.dumps(masked, ensure_ascii=False, separators=(",", ":")), changed


class Digests:
    """digests.txt as it grows, one `SEQ DIGEST` line per events.jsonl line, and its SHA-256:
    what the collector signs, and what a client checks the attestation against."""

    def __init__(self) -> None:
        self._sha256 = hashlib.sha256()
        self.lines = 0

    def add(self, seq: int, line: str) -> str:
        entry = f"{seq} {line_digest(line.encode())}\n"
        self._sha256.update(entry.encode("ascii"))
        self.lines += 1
        return entry

    def hexdigest(self) -> str:
        return self._sha256.hexdigest()


def write_lines(lines: Iterable[tuple[dict[str, Any], str, bool]], out: TextIO, stats: BundleStats,
                progress: Steps, digests_out: TextIO | None = None) -> Digests:
    """Write a bundle's (event, line, masked) items as events.jsonl (and digests.txt); the
    digests of what was written, to hold against the collector's attestation."""
    digests = Digests()
    for event, line, masked in lines:
        out.write(line + "\n")
        entry = digests.add(int(event.get("seq", 0)), line)
        if digests_out is not None:
            digests_out.write(entry)
        stats.add(event, masked)
        progress.step()
    return digests


def add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(time.time())
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def build_manifest(origin: Origin, filters: pb.Filters, stats: BundleStats, status: pb.StatusReply,
                   evidence: pb.EvidenceReply) -> dict[str, Any]:
    checkpoint = json.loads(evidence.checkpoint_json) if evidence.checkpoint_json else None
    return {
        "format": BUNDLE_FORMAT,
        "created_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "collector": {"name": status.collector, "address": origin.address, "version": status.version},
        "filters": {f.name: getattr(filters, f.name) for f in pb.Filters.DESCRIPTOR.fields
                    if getattr(filters, f.name)},
        "counts": {"events": stats.events, "events_with_secrets_masked": stats.masked,
                   "by_level": dict(sorted(stats.by_level.items())), "by_host": dict(sorted(stats.by_host.items()))},
        "time_range": {"first": stats.first_time or None, "last": stats.last_time or None},
        "seq_range": {"first": stats.first_seq or None, "last": stats.last_seq or None},
        # The newest signed checkpoint when the collector signs; otherwise (no signing yet) the
        # chain head, so a reader can still tie the bundle to the store's hash chain.
        "checkpoint": checkpoint,
        "chain_head": {"seq": evidence.head_seq, "link": evidence.head_link_hex} if evidence.head_seq else None,
        "public_key": "signing.pub" if evidence.public_keys_pem else None,
        # The collector's signature over digests.txt: `fleetlog verify --bundle` checks each event.
        "attestation": json.loads(evidence.bundle_attestation_json) if evidence.bundle_attestation_json else None,
        "masked": "values of password=, passwd=, pwd=, secret=, token=, api_key= and similar keys, "
                  "Authorization credentials, PEM private keys; in messages and fields",
    }
