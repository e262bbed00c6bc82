"""Compressed column blocks: how a partition file keeps its events (docs/storage-model.md §6).

A block is up to a few thousand events of one **stream** — one namespace and one host — in one
partition (one tier, one period). Its events are kept column by column and compressed together
with zstd, so what repeats from event to event (host, app, the words of a message template,
times that grow by a little) costs almost nothing. Beside the compressed payload, the block's
row in the `blocks` table carries what lets a search skip it without opening it: seq and time
bounds, the stream, the most severe level, the distinct values of a few low-cardinality columns
and a bloom filter of message tokens, request ids and users.

What the payload holds, per event: every stored column except `seq` (the block's runs of
consecutive seqs give it) and `id` (a pure function of host, source_key and pos, contract §4.2,
recomputed on read; an id that is not, from an old store, is kept). Of the chain link, four
bytes per event (enough to name the first altered event) and the whole link at both ends of each
run of consecutive seqs (what anchors, verification and a purge inside the block need).

Encoding is column-wise with C-speed primitives only (str.join, array, zstd): a string column is
its values joined by NUL (JSON when a value holds a NUL), an integer column an array of deltas,
a column with one value for every event one value in the header. This module knows nothing of
SQLite; `sqlite_blocks.py` stores and reads blocks.
"""

from __future__ import annotations

import itertools
import json
import re
import unicodedata
import zlib
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import zstandard

from fleetlog.collector.store import ROW_COLUMNS

FORMAT = 1
ZSTD_LEVEL = 3
LINK_PREFIX = 4                 # bytes of each event's link kept (the whole link at run ends)
MAX_SUMMARY_VALUES = 32         # distinct values of a summary column kept for skipping
BLOOM_BITS_PER_ITEM = 10        # ~1 % false positives with BLOOM_HASHES = 4
BLOOM_HASHES = 4

SEQ, ORIGIN, POS, ID = (ROW_COLUMNS.index(c) for c in ("seq", "origin", "pos", "id"))
TIME, LEVEL, MESSAGE, HASH = (ROW_COLUMNS.index(c) for c in ("time", "level", "message", "hash"))
NAMESPACE, HOST = ROW_COLUMNS.index("namespace"), ROW_COLUMNS.index("host")
REQUEST_ID, USER = ROW_COLUMNS.index("request_id"), ROW_COLUMNS.index("user")

# Columns kept as integers (delta-coded where they grow), strings, or with NULL allowed.
_INT_COLUMNS = ("origin", "pos", "time", "received_at", "pid", "level", "truncated")
_DELTA_COLUMNS = frozenset(("pos", "time", "received_at"))
_STR_COLUMNS = ("id", "host", "host_ip", "collector", "namespace", "source", "log_type", "app",
                "request_id", "user", "action", "message", "fields", "tier")
# Summarised for skipping (the distinct values, when few): `--app`, `--log-type` and the like.
SUMMARY_COLUMNS = ("app", "log_type", "source", "action", "tier", "collector")

_zstd_compress = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress
_zstd_decompress = zstandard.ZstdDecompressor().decompress
_MAX_BLOCK_BYTES = 256 << 20    # a decompressed payload larger than this is not ours


@dataclass
class Run:
    """Consecutive seqs `start..end` of a block, with the chain link before the first and of
    the last: the run's links can be recomputed from the block alone."""

    start: int
    end: int
    link_before: bytes
    link_end: bytes


@dataclass
class EncodedBlock:
    """A block ready to store: the skip columns and the compressed payload."""

    min_seq: int
    max_seq: int
    min_time: int
    max_time: int
    count: int
    min_level: int
    namespace: str
    host: str
    summary: str            # JSON: {column: [distinct values]} for SUMMARY_COLUMNS, when few
    bloom: bytes
    data: bytes
    origins: dict[int, tuple[int, int]]    # origin -> (min pos, max pos): the dedup spans


class BlockError(ValueError):
    """A payload that does not decode (altered, or not a block)."""


# -- tokens and the bloom filter --------------------------------------------------------------------

_TOKEN = re.compile(r"[^\W_]+")


def fold(text: str) -> str:
    """Case- and accent-folded text, as SQLite FTS5's unicode61 tokenizer folds it (its default
    remove_diacritics): what a keyword search compares."""
    text = text.lower()
    if text.isascii():
        return text
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def tokens(text: str) -> list[str]:
    """The words of `text` as a keyword search sees them: runs of letters and digits, folded."""
    return _TOKEN.findall(fold(text))


def request_key(value: str) -> str:
    return "\x01r" + value


def user_key(value: str) -> str:
    return "\x01u" + value


def _positions(item: str, bits: int) -> Iterable[int]:
    data = item.encode("utf-8", "surrogatepass")
    h1 = zlib.crc32(data)
    h2 = zlib.crc32(data, 0x9E3779B9) | 1
    return ((h1 + i * h2) % bits for i in range(BLOOM_HASHES))


def build_bloom(items: set[str]) -> bytes:
    bits = max(64, len(items) * BLOOM_BITS_PER_ITEM)
    bits += -bits % 8
    filter_ = bytearray(bits // 8)
    for item in items:
        for p in _positions(item, bits):
            filter_[p >> 3] |= 1 << (p & 7)
    return bytes(filter_)


def bloom_may_hold(bloom: bytes, item: str) -> bool:
    """False only when `item` is certainly not in the block."""
    bits = len(bloom) * 8
    if not bits:
        return False
    return all(bloom[p >> 3] & (1 << (p & 7)) for p in _positions(item, bits))


def bloom_items(rows: Sequence[Sequence[Any]]) -> set[str]:
    """What a block's bloom holds: message tokens, request ids and users."""
    items = set(_TOKEN.findall(fold("\n".join(row[MESSAGE] for row in rows))))
    items.update(request_key(r) for r in {row[REQUEST_ID] for row in rows} if r)
    items.update(user_key(u) for u in {row[USER] for row in rows} if u)
    return items


# -- encoding ---------------------------------------------------------------------------------------

def _runs(seqs: Sequence[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for seq in seqs:
        if runs and runs[-1][1] == seq - 1:
            runs[-1] = (runs[-1][0], seq)
        else:
            runs.append((seq, seq))
    return runs


def _encode_str(values: list[Any], sections: list[bytes]) -> Any:
    """A string column: {"c": value} when constant, else a section of NUL-joined text (None as
    "", kept apart by a null list when "" occurs too), or JSON when a value holds a NUL."""
    first = values[0]
    if all(v == first for v in values) and (first is None or isinstance(first, str)):
        return {"c": first}
    nulls = [i for i, v in enumerate(values) if v is None]
    text = "\x00".join("" if v is None else v for v in values)
    if text.count("\x00") != len(values) - 1:
        sections.append(json.dumps(values).encode())
        return {"j": len(sections) - 1}
    sections.append(text.encode("utf-8", "surrogatepass"))
    spec: dict[str, Any] = {"s": len(sections) - 1}
    if nulls and any(v == "" for v in values):
        spec["n"] = nulls
    elif nulls:
        spec["e"] = 1           # "" stands for None
    return spec


def _encode_int(values: list[Any], delta: bool, sections: list[bytes]) -> Any:
    first = values[0]
    if all(v == first for v in values):
        return {"c": first}
    if any(v is None for v in values):
        sections.append(json.dumps(values).encode())
        return {"j": len(sections) - 1}
    numbers = [b - a for a, b in zip(itertools.chain((0,), values), values)] if delta else values
    sections.append(array("q", numbers).tobytes())
    return {"q": len(sections) - 1, "d": 1} if delta else {"q": len(sections) - 1}


def encode_block(rows: Sequence[Sequence[Any]], link_before: Callable[[int], bytes]) -> EncodedBlock:
    """Rows of one stream in seq order (ROW_COLUMNS, `hash` the full link; `id` None when it is
    the derived one) as a block. `link_before(seq)`: the chain link of seq - 1, asked for the
    first seq of each run (the writer knows every link of its transaction and its head)."""
    if not rows:
        raise ValueError("an empty block")
    columns = list(zip(*rows))
    sections: list[bytes] = []
    spec: dict[str, Any] = {}
    for name in _INT_COLUMNS:
        spec[name] = _encode_int(list(columns[ROW_COLUMNS.index(name)]), name in _DELTA_COLUMNS, sections)
    for name in _STR_COLUMNS:
        spec[name] = _encode_str(list(columns[ROW_COLUMNS.index(name)]), sections)
    seqs = columns[SEQ]
    links = columns[HASH]
    by_seq = dict(zip(seqs, links))
    runs = [[start, end, bytes(link_before(start)).hex(), bytes(by_seq[end]).hex()] for start, end in _runs(seqs)]
    sections.append(b"".join(bytes(link[:LINK_PREFIX]) for link in links))
    spec["link_prefix"] = {"b": len(sections) - 1}
    header = json.dumps({"format": FORMAT, "count": len(rows), "runs": runs, "columns": spec,
                         "sections": [len(s) for s in sections]}).encode()
    payload = len(header).to_bytes(4, "little") + header + b"".join(sections)
    times = columns[TIME]
    summary = {}
    for name in SUMMARY_COLUMNS:
        distinct = set(columns[ROW_COLUMNS.index(name)])
        if len(distinct) <= MAX_SUMMARY_VALUES:
            summary[name] = sorted(distinct, key=lambda v: (v is not None, v or ""))
    origins: dict[int, tuple[int, int]] = {}
    for origin, pos in zip(columns[ORIGIN], columns[POS]):
        span = origins.get(origin)
        origins[origin] = (pos, pos) if span is None else (min(span[0], pos), max(span[1], pos))
    return EncodedBlock(
        min_seq=seqs[0], max_seq=seqs[-1], min_time=min(times), max_time=max(times), count=len(rows),
        min_level=min(columns[LEVEL]), namespace=rows[0][NAMESPACE], host=rows[0][HOST],
        summary=json.dumps(summary), bloom=build_bloom(bloom_items(rows)), data=_zstd_compress(payload),
        origins=origins)


# -- decoding ---------------------------------------------------------------------------------------

@dataclass
class DecodedBlock:
    """A block's events as rows in ROW_COLUMNS order. `id` is None where it is the derived one
    (fill_ids); `hash` is LINK_PREFIX bytes, or the whole link at a run's end."""

    rows: list[list[Any]]
    runs: list[Run]


def _decode_column(spec: dict[str, Any], count: int, sections: list[bytes], is_str: bool) -> list[Any]:
    values: list[Any]
    if "c" in spec:
        return [spec["c"]] * count
    if "j" in spec:
        values = list(json.loads(sections[spec["j"]]))
    elif "q" in spec:
        values = array("q", sections[spec["q"]]).tolist()
        if spec.get("d"):
            values = list(itertools.accumulate(values))
    else:
        text = sections[spec["s"]].decode("utf-8", "surrogatepass")
        values = text.split("\x00")
        if "n" in spec:
            for i in spec["n"]:
                values[i] = None
        elif spec.get("e"):
            values = [v if v else None for v in values]
    if len(values) != count:
        raise BlockError(f"column of {len(values)} values in a block of {count}")
    return values


def decode_block(data: bytes) -> DecodedBlock:
    """The rows of a stored payload; BlockError when it does not decode."""
    try:
        payload = _zstd_decompress(data, max_output_size=_MAX_BLOCK_BYTES)
        size = int.from_bytes(payload[:4], "little")
        header = json.loads(payload[4:4 + size])
        sections, offset = [], 4 + size
        for length in header["sections"]:
            sections.append(payload[offset:offset + length])
            offset += length
        count = int(header["count"])
        runs = [Run(int(s), int(e), bytes.fromhex(b), bytes.fromhex(l)) for s, e, b, l in header["runs"]]
        specs = header["columns"]
        values: dict[str, list[Any]] = {}
        for name in _INT_COLUMNS:
            values[name] = _decode_column(specs[name], count, sections, False)
        for name in _STR_COLUMNS:
            values[name] = _decode_column(specs[name], count, sections, True)
        prefixes = sections[specs["link_prefix"]["b"]]
    except BlockError:
        raise
    except (zstandard.ZstdError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise BlockError(f"not a readable block: {exc}") from None
    seqs = [seq for run in runs for seq in range(run.start, run.end + 1)]
    if len(seqs) != count or len(prefixes) != count * LINK_PREFIX:
        raise BlockError(f"a block of {count} events with {len(seqs)} seqs and {len(prefixes) // LINK_PREFIX} links")
    links: list[bytes] = [prefixes[i:i + LINK_PREFIX] for i in range(0, len(prefixes), LINK_PREFIX)]
    index = {seq: i for i, seq in enumerate(seqs)}
    for run in runs:
        links[index[run.end]] = run.link_end
    values["seq"] = seqs
    values["hash"] = links
    rows = [list(row) for row in zip(*(values[name] for name in ROW_COLUMNS))]
    return DecodedBlock(rows, runs)


def fill_ids(rows: list[list[Any]], source_keys: dict[int, tuple[str, str]]) -> None:
    """Put each row's event id back (contract §4.2): from (host, source_key) of its origin and
    its pos, where the block did not keep one."""
    from fleetlog.common.ids import event_ids_of
    makers: dict[int, Callable[[int], str]] = {}
    for row in rows:
        if row[ID] is None:
            maker = makers.get(row[ORIGIN])
            if maker is None:
                host, key = source_keys[row[ORIGIN]]
                maker = makers[row[ORIGIN]] = event_ids_of(host, key)
            row[ID] = maker(row[POS])


def links_of_run(rows: Sequence[Sequence[Any]], run: Run, link_step: Callable[[bytes, Sequence[Any]], bytes]) -> dict[int, bytes]:
    """Every whole link of one run, recomputed from the run's link_before over its rows (which
    must have their ids): what a purge inside a block keeps as anchors."""
    link = run.link_before
    found: dict[int, bytes] = {}
    for row in rows:
        if run.start <= row[SEQ] <= run.end:
            link = link_step(link, row)
            found[row[SEQ]] = link
    return found
