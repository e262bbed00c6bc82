"""Turn a received ingest Batch into storable events: decompress, attach the authenticated origin,
apply the namespace threshold (dropped events are counted, not stored) and classify tiers.

Plain functions over protobuf messages: the gRPC handler only calls `prepare_batch`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import zstandard

from collector.classify import Classifier
from collector.store import IncomingEvents
from common.errors import FleetlogError
from common.pb.fleetlog.v1 import fleetlog_pb2 as pb


class BadBatch(FleetlogError):
    """A batch that cannot be decoded or whose columns disagree in length."""


@dataclass(frozen=True)
class Origin:
    """Who sent a batch, as established by identity.py — never taken from the payload alone."""

    host: str
    host_ip: str
    namespaces: tuple[str, ...] | None = None   # namespaces it may write; None = any
    claimed: str = ""                  # the name the agent gave itself, when it is not `host`


@dataclass
class PreparedBatch:
    events: list[IncomingEvents]
    received: int = 0
    dropped_below_level: int = 0
    denied: int = 0                      # events in namespaces the caller may not write
    denied_namespaces: set[str] = field(default_factory=set)


_zstd = zstandard.ZstdDecompressor()


def batch_chunks(batch: pb.Batch) -> list[pb.Chunk]:
    if batch.codec == pb.CODEC_NONE:
        return list(batch.chunks)
    if batch.codec == pb.CODEC_ZSTD:
        try:
            chunks = pb.Chunks.FromString(_zstd.decompress(batch.packed))
        except (zstandard.ZstdError, ValueError) as exc:
            raise BadBatch(f"batch {batch.batch_id}: cannot decode zstd payload: {exc}") from None
        return list(chunks.chunks)
    raise BadBatch(f"batch {batch.batch_id}: unknown codec {batch.codec}")


def _check_columns(chunk: pb.Chunk) -> int:
    count = len(chunk.position)
    lengths = (len(chunk.time_us), len(chunk.level), len(chunk.message), len(chunk.request_id),
               len(chunk.user), len(chunk.action), len(chunk.app), len(chunk.pid),
               len(chunk.fields_json), len(chunk.flags))
    if any(n != count for n in lengths):
        raise BadBatch(f"chunk of {chunk.source!r}: columns of different lengths {count} vs {lengths}")
    if chunk.claimed_host and len(chunk.claimed_host) != count:
        raise BadBatch(f"chunk of {chunk.source!r}: claimed_host column length {len(chunk.claimed_host)}")
    return count


def _with_claim(fields_json: str, claimed: str) -> str:
    try:
        fields = json.loads(fields_json) if fields_json else {}
    except json.JSONDecodeError:
        fields = {"raw_fields": fields_json}
    if not isinstance(fields, dict):
        fields = {"raw_fields": fields}
    fields["claimed_host"] = claimed
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":"))


def prepare_batch(batch: pb.Batch, origin: Origin, classifier: Classifier) -> PreparedBatch:
    prepared = PreparedBatch(events=[])
    for chunk in batch_chunks(batch):
        count = _check_columns(chunk)
        prepared.received += count
        namespace = chunk.namespace or "default"
        if origin.namespaces is not None and namespace not in origin.namespaces:
            prepared.denied_namespaces.add(namespace)
            prepared.denied += count
            continue
        threshold = classifier.threshold(namespace)
        levels = chunk.level
        keep = [i for i in range(count) if levels[i] <= threshold]
        prepared.dropped_below_level += count - len(keep)
        if not keep:
            continue
        columns = {name: list(getattr(chunk, name)) for name in (
            "position", "time_us", "message", "request_id", "user", "action", "app", "pid", "fields_json")}
        level, flags = bytes(levels), bytes(chunk.flags)
        if len(keep) != count:
            columns = {name: [values[i] for i in keep] for name, values in columns.items()}
            level, flags = bytes(level[i] for i in keep), bytes(flags[i] for i in keep)
        if chunk.claimed_host:
            claims = [chunk.claimed_host[i] or origin.claimed for i in keep]
            columns["fields_json"] = [
                _with_claim(fj, claim) if claim and claim != origin.host else fj
                for fj, claim in zip(columns["fields_json"], claims)]
        elif origin.claimed and origin.claimed != origin.host:
            columns["fields_json"] = [_with_claim(fj, origin.claimed) for fj in columns["fields_json"]]
        tiers = classifier.tiers(log_type=chunk.log_type, namespace=namespace, source=chunk.source,
                                 actions=columns["action"], apps=columns["app"])
        prepared.events.append(IncomingEvents(
            host=origin.host, host_ip=origin.host_ip, source_key=chunk.source_key or chunk.source,
            source=chunk.source, namespace=namespace, log_type=chunk.log_type, level=level, flags=flags,
            tier=tiers, **columns))
    return prepared
