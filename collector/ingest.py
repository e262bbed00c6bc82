"""Turn a received ingest Batch into storable events: decompress, attach the authenticated origin,
apply the namespace threshold (dropped events are counted, not stored) and classify tiers.

Plain functions over protobuf messages: the gRPC handler calls `decode_request`, `unpack` (to
know what admitting a batch costs) and `prepare_chunks`. Every check of what a peer sent lives
here and raises BadBatch with a reason a person can act on.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import zstandard
from google.protobuf.message import DecodeError
from zlib_ng import zlib_ng

from fleetlog.collector.classify import Classifier
from fleetlog.collector.internal import COLLECTOR_NAMESPACE
from fleetlog.collector.store import IncomingEvents
from fleetlog.collector.store.blocks import event_ids
from fleetlog.common.errors import FleetlogError
from fleetlog.common.pb.fleetlog.v1 import fleetlog_pb2 as pb

try:  # the grammar check and the relayed fields in C (setup.py builds them with the block codec)
    from fleetlog.collector.store._blocks_native import relayed_fields as _native_relayed
    from fleetlog.collector.store._blocks_native import uncertain_objects as _native_uncertain
except ImportError:  # pragma: no cover - not built: json.loads looks at every text
    _native_uncertain = _native_relayed = None  # type: ignore[assignment]


class BadBatch(FleetlogError):
    """A request that cannot be decoded, or whose contents break the wire contract (columns of
    different lengths, values out of range, limits exceeded). `reason` is a short fixed label
    (the metric label of fleetlog_collector_requests_rejected_total); the message says what a
    person must change."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class IngestLimits:
    """What one peer may make the collector hold: collector.toml [ingest]."""

    max_message_bytes: int = 4 * 1024 * 1024
    max_batch_events: int = 50_000


# Event times the rest of the collector can represent (RFC 3339 years 0001-9999) and positions
# that fit SQLite's signed 64-bit INTEGER: anything outside would fail a whole group commit, or
# every later search, instead of this one batch.
MIN_TIME_US = -62_135_596_800_000_000
MAX_TIME_US = 253_402_300_799_999_999
MAX_POSITION = (1 << 63) - 1
MAX_LEVEL = 7
MAX_RELAYED_HOST = 255      # a DNS name's length; an address or certificate name is shorter


@dataclass(frozen=True)
class Origin:
    """Who sent a batch, as established by identity.py — never taken from the payload alone."""

    host: str
    host_ip: str
    namespaces: tuple[str, ...] | None = None   # namespaces it may write; None = any
    claimed: str = ""                  # the name the agent gave itself, when it is not `host`
    may_relay: bool = True             # relayed chunks accepted (identity.Caller.may_relay)


class RelayRefused(Exception):
    """A batch with relayed chunks from a caller that may not relay: nothing of it is stored."""


@dataclass
class PreparedBatch:
    events: list[IncomingEvents]
    received: int = 0
    dropped_below_level: int = 0
    denied: int = 0                      # events in namespaces the caller may not write
    denied_namespaces: set[str] = field(default_factory=set)


_zstd = zstandard.ZstdDecompressor()
_GZIP_WBITS = zlib.MAX_WBITS | 16      # zlib's gzip format, one member


def decode_request(raw: bytes) -> pb.IngestRequest:
    """Wire bytes -> IngestRequest, or BadBatch. The service registers raw-bytes deserializers so
    that this, not grpc, decodes what a peer sent (and only once the peer is authenticated)."""
    try:
        return pb.IngestRequest.FromString(raw)
    except (DecodeError, RecursionError, ValueError) as exc:
        raise BadBatch("corrupt_message", f"message of {len(raw)} bytes is not a valid "
                       f"fleetlog.v1.IngestRequest ({exc or 'protobuf decode error'}); "
                       "is the client speaking the fleetlog v1 protocol?") from None


@dataclass
class Unpacked:
    """A batch's chunks, decompressed and decoded, with what admitting them costs."""

    batch_id: int
    chunks: list[pb.Chunk]
    events: int
    payload_bytes: int       # decompressed size of a packed payload (0 when sent uncompressed)


def _unpack_zstd(batch: pb.Batch, limits: IngestLimits) -> bytes:
    """Decompress at most max_message_bytes: a small frame may declare or expand to gigabytes."""
    try:
        parts, size = [], 0
        with _zstd.stream_reader(batch.packed) as reader:
            while size <= limits.max_message_bytes and (part := reader.read(1 << 20)):
                parts.append(part)
                size += len(part)
        data = b"".join(parts)
    except (zstandard.ZstdError, ValueError) as exc:
        raise BadBatch("bad_compression", f"batch {batch.batch_id}: cannot decode its zstd payload: {exc}") from None
    return _within_limit(batch, data, "zstd", limits)


def _unpack_gzip(batch: pb.Batch, limits: IngestLimits) -> bytes:
    """One gzip member, inflated to at most max_message_bytes + 1 (more is refused, never made)."""
    inflater = zlib_ng.decompressobj(wbits=_GZIP_WBITS)    # zlib's API; 2.3x zlib's speed here
    try:
        data = inflater.decompress(batch.packed, limits.max_message_bytes + 1)
    except zlib_ng.error as exc:  # type: ignore[misc]  # a class; its stub calls it an instance
        raise BadBatch("bad_compression", f"batch {batch.batch_id}: cannot decode its gzip payload: {exc}") from None
    if len(data) <= limits.max_message_bytes and not inflater.eof:
        raise BadBatch("bad_compression", f"batch {batch.batch_id}: its gzip payload is cut short")
    if inflater.eof and inflater.unused_data:
        raise BadBatch("bad_compression", f"batch {batch.batch_id}: bytes after its gzip payload")
    return _within_limit(batch, data, "gzip", limits)


def _within_limit(batch: pb.Batch, data: bytes, codec: str, limits: IngestLimits) -> bytes:
    if len(data) > limits.max_message_bytes:
        raise BadBatch("too_large", f"batch {batch.batch_id}: {codec} payload expands beyond "
                       f"ingest.max_message_bytes ({limits.max_message_bytes} bytes); send smaller batches "
                       "(agent batch.max_bytes) or raise the collector's limit")
    return data


_UNPACKERS = {pb.CODEC_ZSTD: _unpack_zstd, pb.CODEC_GZIP: _unpack_gzip}


def unpack(batch: pb.Batch, limits: IngestLimits = IngestLimits()) -> Unpacked:
    """The chunks of a batch and their event count; BadBatch for an unknown codec, a corrupt or
    oversized payload, or more events than ingest.max_batch_events."""
    chunks, payload = _chunks(batch, limits)
    events = sum(len(chunk.position) for chunk in chunks)
    if events > limits.max_batch_events:
        raise BadBatch("too_many_events", f"batch {batch.batch_id}: {events} events, more than "
                       f"ingest.max_batch_events ({limits.max_batch_events}); lower the agent's "
                       "batch.max_events or raise the collector's limit")
    return Unpacked(batch.batch_id, chunks, events, payload)


def _chunks(batch: pb.Batch, limits: IngestLimits) -> tuple[list[pb.Chunk], int]:
    if batch.codec == pb.CODEC_NONE:
        if batch.packed:
            raise BadBatch("bad_compression", f"batch {batch.batch_id}: packed payload without a codec")
        return list(batch.chunks), 0
    unpacker = _UNPACKERS.get(batch.codec)
    if unpacker is not None:
        if batch.chunks:
            raise BadBatch("bad_columns", f"batch {batch.batch_id}: both chunks and a packed payload")
        data = unpacker(batch, limits)
        try:
            chunks = pb.Chunks.FromString(data)
        except (DecodeError, RecursionError, ValueError) as exc:
            raise BadBatch("corrupt_message", f"batch {batch.batch_id}: its zstd payload is not a valid "
                           f"fleetlog.v1.Chunks message ({exc or 'protobuf decode error'})") from None
        return list(chunks.chunks), len(data)
    raise BadBatch("unknown_codec", f"batch {batch.batch_id}: unknown codec {batch.codec} "
                   "(this collector knows CODEC_NONE = 0, CODEC_ZSTD = 1 and CODEC_GZIP = 2; use compression "
                   '"zstd", "gzip" or "none")')


_COLUMNS = ("time_us", "level", "message", "request_id", "user", "action", "app", "pid", "fields_json", "flags")


def _check_columns(chunk: pb.Chunk) -> tuple[int, dict[str, list[Any]]]:
    """Every per-event column has one value per event, and every value is one the store and the
    queries can hold; BadBatch names the first that is not. Returns the count of events and the
    columns it made into lists for the check (fields_json, position, time_us), for the events
    too: a protobuf column makes its Python values again at every pass over it."""
    count = len(chunk.position)
    where = f"chunk of source {chunk.source!r}"
    for name in _COLUMNS:
        n = len(getattr(chunk, name))
        if n != count:
            raise BadBatch("bad_columns", f"{where}: column {name} has {n} values for {count} events "
                           "(every per-event column must have one value per position)")
    if chunk.claimed_host and len(chunk.claimed_host) != count:
        raise BadBatch("bad_columns", f"{where}: column claimed_host has {len(chunk.claimed_host)} values "
                       f"for {count} events")
    if "\x00" in chunk.source_key or "\x00" in chunk.source:
        # Event ids hash host, source key and position joined by NUL, and a relayed source's key
        # is marked by NULs (relayed_source_key): a NUL of the sender's own would blur both.
        raise BadBatch("bad_value", f"{where}: source or source_key holds a NUL")
    if len(chunk.relayed_host) > MAX_RELAYED_HOST or "\x00" in chunk.relayed_host:
        raise BadBatch("bad_value", f"{where}: relayed_host is longer than {MAX_RELAYED_HOST} characters or "
                       "holds a NUL")
    if count == 0:
        return 0, {"fields_json": [], "position": [], "time_us": []}
    if max(chunk.level) > MAX_LEVEL:
        raise BadBatch("bad_value", f"{where}: level {max(chunk.level)} out of range (0 emergency .. 7 debug)")
    positions = list(chunk.position)
    if max(positions) > MAX_POSITION:
        raise BadBatch("bad_value", f"{where}: position {max(positions)} beyond 2^63-1")
    times = list(chunk.time_us)
    if min(times) < MIN_TIME_US or max(times) > MAX_TIME_US:
        bad = next(t for t in times if not MIN_TIME_US <= t <= MAX_TIME_US)
        raise BadBatch("bad_value", f"{where}: time_us {bad} outside the years 0001-9999")
    texts = list(chunk.fields_json)
    for i in _uncertain_objects(texts):
        if not _is_json_object(texts[i]):
            raise BadBatch("bad_value", f"{where}: fields_json of event {i} is not a JSON object "
                           "(send \"\" for no fields)")
    return count, {"fields_json": texts, "position": positions, "time_us": times}


def _uncertain_objects(texts: Sequence[str]) -> Sequence[int]:
    """The indexes of the texts json.loads must look at: in C, those a strict check of the grammar
    does not find to be objects (0.05 instead of 0.5 µs an event); without it, every non-empty one."""
    if _native_uncertain is not None:
        return _native_uncertain(texts)
    return [i for i, text in enumerate(texts) if text]


_scan_json = json.JSONDecoder().scan_once   # type: ignore[attr-defined]  # set in __init__; not in typeshed


def _is_json_object(text: str) -> bool:
    """json.loads(text) is a dict. The decoder's C scanner is called directly (0.6 instead of
    3.1 µs an event: loads adds three Python frames and two regex matches for whitespace); what it
    does not take whole (surrounding whitespace, an error) gets json.loads's own answer."""
    try:
        value, end = _scan_json(text, 0)
        if end == len(text):
            return type(value) is dict
    except (StopIteration, ValueError, RecursionError):
        pass
    try:
        return type(json.loads(text)) is dict
    except (ValueError, RecursionError):
        return False


def _with_claim(fields_json: str, claimed: str) -> str:
    return _with_fields(fields_json, claimed_host=claimed)


def _with_fields(fields_json: str, **values: str) -> str:
    """fields_json with `values` set (over what the payload had under those names)."""
    try:
        fields = json.loads(fields_json) if fields_json else {}
    except json.JSONDecodeError:
        fields = {"raw_fields": fields_json}
    if not isinstance(fields, dict):
        fields = {"raw_fields": fields}
    fields.update(values)
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":"))


# The last character of a JSON value: an object text (checked) ending in one of these and "}" has a member.
_VALUE_ENDS = frozenset('"0123456789el}]')


def _relayed_fields(texts: Sequence[str], claims: Sequence[str], host: str, relay: str) -> list[str]:
    """Each relayed event's fields_json with `relay` and, where the sender claimed another name,
    `claimed_host` set: what _with_fields gives. The usual text (no backslash, which an escaped name
    could hide behind, and neither name in it) gets them appended as text, encoded once a chunk,
    instead of a JSON loads and dumps an event (6 of a relayed event's 14 µs at the collector);
    in C when built (a Python step an event was 1 of the 7 µs left)."""
    relay_part = '"relay":' + json.dumps(relay, ensure_ascii=False)
    if _native_relayed is not None and relay_part.isascii():
        made, fallbacks = _native_relayed(texts, claims, host, relay_part, _claim_part)
        for i in fallbacks:
            made[i] = _relayed_text(texts[i], claims[i], host, relay, relay_part, _claim_part(claims[i]))
        return cast(list[str], made)    # every None was a fallback, now filled
    claim_parts: dict[str, str] = {}
    out = []
    for text, claim in zip(texts, claims):
        part = claim_parts.get(claim)
        if part is None:
            part = claim_parts[claim] = _claim_part(claim)
        out.append(_relayed_text(text, claim, host, relay, relay_part, part))
    return out


def _claim_part(claim: str) -> str:
    return ',"claimed_host":' + json.dumps(claim, ensure_ascii=False)


def _relayed_text(text: str, claim: str, host: str, relay: str, relay_part: str, claim_part: str) -> str:
    """One event's text of _relayed_fields (`claim_part`: _claim_part(claim))."""
    claimed = bool(claim) and claim != host
    added = relay_part + claim_part if claimed else relay_part
    if not text:
        return "{" + added + "}"
    if (text[-1] == "}" and text[-2:-1] in _VALUE_ENDS and "\\" not in text and '"relay"' not in text
            and '"claimed_host"' not in text):
        return text[:-1] + "," + added + "}"
    if claimed:
        return _with_fields(text, relay=relay, claimed_host=claim)
    return _with_fields(text, relay=relay)


def relayed_source_key(relay: str, source_key: str) -> str:
    """The stored source key of a source a relay agent received (contract §10). The NUL cannot
    be in a source key an agent sends for its own events (ingest refuses it), so none is this."""
    return f"relay\x00{relay}\x00{source_key}"


def prepare_batch(batch: pb.Batch, origin: Origin, classifier: Classifier,
                  limits: IngestLimits = IngestLimits()) -> PreparedBatch:
    return prepare_chunks(unpack(batch, limits), origin, classifier)


def prepare_chunks(unpacked: Unpacked, origin: Origin, classifier: Classifier) -> PreparedBatch:
    """Check every chunk first (BadBatch, RelayRefused: nothing of the batch is stored), then build
    its events."""
    if not origin.may_relay and any(chunk.relayed_host for chunk in unpacked.chunks):
        raise RelayRefused(f"{origin.host} may not relay events of other senders (relay = true in its "
                           "tokens_file entry allows it)")
    checked = [_check_columns(chunk) for chunk in unpacked.chunks]
    prepared = PreparedBatch(events=[])
    for chunk, (count, listed) in zip(unpacked.chunks, checked):
        prepared.received += count
        namespace = chunk.namespace or "default"
        if namespace == COLLECTOR_NAMESPACE or (origin.namespaces is not None and namespace not in origin.namespaces):
            prepared.denied_namespaces.add(namespace)
            prepared.denied += count
            continue
        threshold = classifier.threshold(namespace)
        levels = chunk.level
        # Every event at or above the threshold, the usual chunk: found by one C pass.
        keep: Sequence[int] = (range(count) if max(levels, default=0) <= threshold
                               else [i for i in range(count) if levels[i] <= threshold])
        prepared.dropped_below_level += count - len(keep)
        if not keep:
            continue
        columns = {name: list(getattr(chunk, name)) for name in (
            "message", "request_id", "user", "action", "app", "pid")}
        columns.update(listed)
        level, flags = bytes(levels), bytes(chunk.flags)
        if len(keep) != count:
            columns = {name: [values[i] for i in keep] for name, values in columns.items()}
            level, flags = bytes(level[i] for i in keep), bytes(flags[i] for i in keep)
        host = origin.host
        source_key = chunk.source_key or chunk.source
        if chunk.relayed_host:
            # A relayed source is the relay's: its dedup spans and event ids (host, source_key,
            # pos) can never be those of a node's own source, so a relay naming a node as the
            # sender cannot make that node's events count as duplicates, nor take their ids.
            source_key = relayed_source_key(origin.host, source_key)
            # Events a relay agent received from a sender that runs no agent (contract §10): the
            # sender as the relay knows it is the host; the authenticated relay is always recorded,
            # over anything the payload said, so a relayed event never passes for a node's own.
            host = chunk.relayed_host
            if not chunk.claimed_host:
                claims: Sequence[str] = [""] * len(keep)
            else:   # the usual chunk keeps every event: one copy of the column, not an index each
                claims = list(chunk.claimed_host) if len(keep) == count else [chunk.claimed_host[i] for i in keep]
            columns["fields_json"] = _relayed_fields(columns["fields_json"], claims, host, origin.host)
        elif chunk.claimed_host:
            claims = [chunk.claimed_host[i] or origin.claimed for i in keep]
            columns["fields_json"] = [
                _with_claim(fj, claim) if claim and claim != origin.host else fj
                for fj, claim in zip(columns["fields_json"], claims)]
        elif origin.claimed and origin.claimed != origin.host:
            columns["fields_json"] = [_with_claim(fj, origin.claimed) for fj in columns["fields_json"]]
        tiers = classifier.tiers(log_type=chunk.log_type, namespace=namespace, source=chunk.source,
                                 actions=columns["action"], apps=columns["app"])
        prepared.events.append(IncomingEvents(
            host=host, host_ip=origin.host_ip, source_key=source_key,
            source=chunk.source, namespace=namespace, log_type=chunk.log_type, level=level, flags=flags,
            tier=tiers, ids=event_ids(host, source_key, columns["position"]), **columns))
    return prepared
