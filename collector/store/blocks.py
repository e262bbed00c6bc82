"""Compressed column blocks: how a partition file keeps its events (docs/storage-model.md §6).

A block is up to a few thousand events of one **stream** — one namespace and one host — in one
partition (one tier, one period). Its events are kept column by column and compressed together
with zstd, so what repeats from event to event (host, app, the words of a message template,
times that grow by a little) costs almost nothing. Beside the compressed payload, the block's
row in the `blocks` table carries what lets a search skip it without opening it: seq and time
bounds, the stream, the most severe level, the distinct values of a few low-cardinality columns,
a bloom filter of message tokens, and (in `block_keys`) one of its request ids and one of its
users, denser (KEY_BLOOM_*) since a lookup by either tests every block of the store.

What the payload holds, per event: every stored column except `seq` (the block's runs of
consecutive seqs give it) and `id` (a pure function of host, source_key and pos, contract §4.2,
recomputed on read; an id that is not, from an old store, is kept). Of the chain link, four
bytes per event (enough to name the first altered event) and the whole link at both ends of each
run of consecutive seqs (what anchors, verification and a purge inside the block need).

Encoding is column-wise with C-speed primitives only (str.join, array, zstd): a string column is
its values joined by NUL (JSON when a value holds a NUL), an integer column an array of deltas,
a column with one value for every event one value in the header. What has no such primitive
(the bloom filter's words and hashes, rows out of columns, the derived ids) is in
`_blocks_native.c` where it was built, with a Python form here that gives the same bytes. This
module knows nothing of SQLite; `sqlite_blocks.py` stores and reads blocks.

FORMAT 2 (1 was never shipped): the bloom's hash is crc32 mixed by splitmix64's finaliser, 6 bits
set for each item in 10 (crc32 alone is linear: a block's words, numbers a digit apart, set
related bits, and FORMAT 1's 4 of 10 gave 1.5-2.2 % false positives where 1.2 % was due; now
0.7-1.0 %, 0.84 % in theory); the zstd frame carries its checksum. A FORMAT 1 block's bloom would
answer wrongly, so such blocks are refused (BlockError).
"""

from __future__ import annotations

import bisect
import functools
import itertools
import json
import operator
import re
import threading
import unicodedata
import zlib
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import zstandard

from fleetlog.collector.store import ROW_COLUMNS

FORMAT = 2
ZSTD_LEVEL = 3
LINK_PREFIX = 4                 # bytes of each event's link kept (the whole link at run ends)
MAX_SUMMARY_VALUES = 32         # distinct values of a summary column kept for skipping
BLOOM_BITS_PER_ITEM = 10        # 0.84 % false positives with BLOOM_HASHES = 6 (measured 0.7-1.0 %)
BLOOM_HASHES = 6
# The request-id and user filters (block_keys): a lookup by either tests every block of the store
# (no time bound), so a false positive, a block opened for nothing, costs more than a byte of
# filter: 16 bits and 11 hashes an item give 0.05 % (0.84 % cost 170-340 needless blocks at 100M).
KEY_BLOOM_BITS_PER_ITEM = 16
KEY_BLOOM_HASHES = 11
# At least this many bits: in a filter of 64 with one item, another item sets the same 11 bits
# about once in 1,000 (double hashing repeats itself in a small filter); in 512, once in 10^5.
KEY_BLOOM_MIN_BITS = 512

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


try:
    from fleetlog.collector.store import _blocks_native as _native
except ImportError:             # not built: the Python forms run (tests set it to None to run them)
    _native = None  # type: ignore[assignment]

# A zstd (de)compressor object must not be used by two threads at once (two compressing together
# made blocks that did not decode), and the writer's partition threads and every reader thread
# use this module: one of each per thread.
_per_thread = threading.local()


def _zstd_compress(data: bytes) -> bytes:
    compressor = getattr(_per_thread, "compressor", None)
    if compressor is None:
        # The frame's checksum: an altered payload fails to decode instead of giving other values.
        compressor = _per_thread.compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True)
    return bytes(compressor.compress(data))


def _zstd_decompress(data: bytes, max_output_size: int = 0) -> bytes:
    decompressor = getattr(_per_thread, "decompressor", None)
    if decompressor is None:
        decompressor = _per_thread.decompressor = zstandard.ZstdDecompressor()
    return bytes(decompressor.decompress(data, max_output_size=max_output_size))


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
    bloom: bytes            # the words of the messages
    request_bloom: bytes    # the request ids (block_keys)
    user_bloom: bytes       # the users (block_keys)
    data: bytes
    origins: dict[int, tuple[int, int]]    # origin -> (min pos, max pos): the dedup spans


class BlockError(ValueError):
    """A payload that does not decode (altered, or not a block)."""


# -- tokens and the bloom filter --------------------------------------------------------------------

_TOKEN = re.compile(r"[^\W_]+")


@functools.cache
def _combining_bmp() -> re.Pattern[str]:
    """The characters of the Basic Multilingual Plane with a nonzero combining class, as one
    class: stripping them with it is a few times faster than testing each character."""
    marks = "".join(chr(c) for c in range(0x10000) if unicodedata.combining(chr(c)))
    return re.compile(f"[{marks}]+")


def fold(text: str) -> str:
    """Case- and accent-folded text, as SQLite FTS5's unicode61 tokenizer folds it (its default
    remove_diacritics): what a keyword search compares."""
    text = text.lower()
    if text.isascii():
        return text
    # Lower again: a compatibility form can expand to capitals (™ -> TM, ㎒ -> MHz).
    text = _combining_bmp().sub("", unicodedata.normalize("NFKD", text)).lower()
    if max(text, default="") <= "\uffff":
        return text
    return "".join(c for c in text if not unicodedata.combining(c))


def tokens(text: str) -> list[str]:
    """The words of `text` as a keyword search sees them: runs of letters and digits, folded."""
    return _TOKEN.findall(fold(text))


def request_key(value: str) -> str:
    return "\x01r" + value


def user_key(value: str) -> str:
    return "\x01u" + value


_M64 = (1 << 64) - 1


def item_hashes(item: str) -> tuple[int, int]:
    """The item's two 32-bit hashes: crc32 of its UTF-8 mixed by splitmix64's finaliser (as
    _blocks_native.c does); bit i of `hashes` is (h1 + i * h2) % bits."""
    z = (zlib.crc32(item.encode("utf-8", "surrogatepass")) + 0x9E3779B97F4A7C15) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    z ^= z >> 31
    return z & 0xFFFFFFFF, (z >> 32) | 1


def _positions(item: str, bits: int, hashes: int = BLOOM_HASHES) -> list[int]:
    h1, h2 = item_hashes(item)
    return [(h1 + i * h2) % bits for i in range(hashes)]


def build_bloom(items: set[str], bits_per_item: int = BLOOM_BITS_PER_ITEM, hashes: int = BLOOM_HASHES,
                min_bits: int = 64) -> bytes:
    bits = max(min_bits, len(items) * bits_per_item)
    bits += -bits % 8
    filter_ = bytearray(bits // 8)
    for item in items:
        for p in _positions(item, bits, hashes):
            filter_[p >> 3] |= 1 << (p & 7)
    return bytes(filter_)


def bloom_may_hold(bloom: bytes, item: str, hashes: int = BLOOM_HASHES) -> bool:
    """False only when `item` is certainly not in the filter."""
    bits = len(bloom) * 8
    if not bits:
        return False
    return all(bloom[p >> 3] & (1 << (p & 7)) for p in _positions(item, bits, hashes))


def bloom_holds_any(bloom: bytes, pairs: Sequence[tuple[int, int]], hashes: int = KEY_BLOOM_HASHES) -> bool:
    """Whether the filter may hold one of the items whose item_hashes are `pairs` (a search's
    request ids or users, hashed once for all the blocks it tests)."""
    if _native is not None:
        return _native.bloom_holds_any(bloom, pairs, hashes)
    bits = len(bloom) * 8
    return bits > 0 and any(all(bloom[p >> 3] & (1 << (p & 7)) for p in ((h1 + i * h2) % bits for i in range(hashes)))
                            for h1, h2 in pairs)


def bloom_items(rows: Sequence[Sequence[Any]]) -> set[str]:
    """What a block's bloom holds: the words of its messages."""
    return message_words([row[MESSAGE] for row in rows])


def message_words(messages: Sequence[str]) -> set[str]:
    """The words of `messages` as a block's bloom holds them."""
    return set(_TOKEN.findall(fold("\n".join(messages))))


def key_items(values: Sequence[Any], key: Callable[[str], str]) -> set[str]:
    """What a block's request-id (key=request_key) or user (user_key) filter holds."""
    return {key(v) for v in set(values) if v}


def word_bloom(columns: Sequence[Sequence[Any]]) -> bytes:
    """The filter of a block's message words (`columns`: the block's columns, ROW_COLUMNS order)."""
    if _native is None:
        return build_bloom(message_words(columns[MESSAGE]))
    return _native.bloom(columns[MESSAGE], (), (), tokens, BLOOM_BITS_PER_ITEM, BLOOM_HASHES)


def word_and_key_bloom(columns: Sequence[Sequence[Any]]) -> bytes:
    """The word filter of a block written before block_keys: its request ids and users too."""
    if _native is None:
        return build_bloom(message_words(columns[MESSAGE]) | key_items(columns[REQUEST_ID], request_key)
                           | key_items(columns[USER], user_key))
    return _native.bloom(columns[MESSAGE], columns[REQUEST_ID], columns[USER], tokens, BLOOM_BITS_PER_ITEM,
                         BLOOM_HASHES)


def key_blooms(request_ids: Sequence[Any], users: Sequence[Any]) -> tuple[bytes, bytes]:
    """The request-id and user filters of a block's events (block_keys)."""
    shape = (KEY_BLOOM_BITS_PER_ITEM, KEY_BLOOM_HASHES, KEY_BLOOM_MIN_BITS)
    if _native is None:
        return build_bloom(key_items(request_ids, request_key), *shape), build_bloom(key_items(users, user_key), *shape)
    return _native.bloom((), request_ids, (), tokens, *shape), _native.bloom((), (), users, tokens, *shape)


# -- encoding ---------------------------------------------------------------------------------------

def _runs(seqs: Sequence[int]) -> list[tuple[int, int, int]]:
    """(first seq, last seq, index of the last) of each run of consecutive seqs."""
    first = seqs[0]
    if seqs[-1] - first == len(seqs) - 1 and list(seqs) == list(range(first, first + len(seqs))):
        return [(first, seqs[-1], len(seqs) - 1)]     # one run, the writer's usual block: compared in C
    steps = map(operator.sub, itertools.islice(seqs, 1, None), seqs)
    ends = [*itertools.compress(range(len(seqs) - 1), map((1).__ne__, steps)), len(seqs) - 1]
    return [(seqs[end_before + 1], seqs[end], end) for end_before, end in zip([-1, *ends], ends)]


def _constant(values: list[Any]) -> bool:
    return values[-1] == values[0] and values.count(values[0]) == len(values)


def _encode_str(values: list[Any], sections: list[bytes]) -> Any:
    """A string column: {"c": value} when constant, else a section of NUL-joined text (None as
    "", kept apart by a null list when "" occurs too), or JSON when a value holds a NUL."""
    first = values[0]
    if (first is None or isinstance(first, str)) and _constant(values):
        return {"c": first}
    joined = _native.str_column(values) if _native is not None else _joined(values)
    if joined is None:
        sections.append(json.dumps(values).encode())
        return {"j": len(sections) - 1}
    data, has_none, has_empty = joined
    sections.append(data)
    spec: dict[str, Any] = {"s": len(sections) - 1}
    if has_none and has_empty:
        spec["n"] = [i for i, v in enumerate(values) if v is None]
    elif has_none:
        spec["e"] = 1           # "" stands for None
    return spec


def _joined(values: list[Any]) -> tuple[bytes, bool, bool] | None:
    """The values' UTF-8 joined by NUL (None as ""), whether None and "" occur; None when a
    value holds a NUL (_blocks_native.str_column)."""
    has_none = None in values
    text = "\x00".join(["" if v is None else v for v in values] if has_none else values)
    if text.count("\x00") != len(values) - 1:
        return None
    return text.encode("utf-8", "surrogatepass"), has_none, "" in values


def _encode_int(values: list[Any], delta: bool, sections: list[bytes]) -> Any:
    if _constant(values):
        return {"c": values[0]}
    packed = _native.int_column(values, delta) if _native is not None else _packed_ints(values, delta)
    if packed is None:
        sections.append(json.dumps(values).encode())
        return {"j": len(sections) - 1}
    sections.append(packed)
    return {"q": len(sections) - 1, "d": 1} if delta else {"q": len(sections) - 1}


def _packed_ints(values: list[Any], delta: bool) -> bytes | None:
    """The values (or, `delta`, their differences) as array("q") bytes; None when one is None or
    needs more than 64 bits, kept as JSON then (_blocks_native.int_column)."""
    if None in values:
        return None
    numbers = map(operator.sub, values, itertools.chain((0,), values)) if delta else values
    try:
        return array("q", numbers).tobytes()
    except OverflowError:       # beyond 64 bits
        return None


def _origin_spans(origins: Sequence[int], positions: Sequence[int]) -> dict[int, tuple[int, int]]:
    """origin -> (min pos, max pos)."""
    if _native is not None:
        return _native.origin_spans(origins, positions)
    if len(set(origins)) == 1:
        return {origins[0]: (min(positions), max(positions))}
    spans: dict[int, tuple[int, int]] = {}
    for origin, pos in zip(origins, positions):
        span = spans.get(origin)
        spans[origin] = (pos, pos) if span is None else (min(span[0], pos), max(span[1], pos))
    return spans


def _columns(rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """The rows' columns (ROW_COLUMNS wide), new lists the encoder may keep."""
    if _native is not None:
        return _native.columns(rows, len(ROW_COLUMNS))
    return [list(column) for column in zip(*rows)]


def encode_block(rows: Sequence[Sequence[Any]], link_before: Callable[[int], bytes],
                 derived_ids: bool = False) -> EncodedBlock:
    """Rows of one stream in seq order (ROW_COLUMNS, `hash` the full link; `id` None when it is
    the derived one) as a block. `link_before(seq)`: the chain link of seq - 1, asked for the
    first seq of each run (the writer knows every link of its transaction and its head).
    `derived_ids`: every row's id is the derived one, whatever `id` holds (the writer's new
    events): none is kept, as if each were None."""
    if not rows:
        raise ValueError("an empty block")
    return encode_columns(_columns(rows), link_before, derived_ids)


def encode_columns(columns: list[list[Any]], link_before: Callable[[int], bytes], derived_ids: bool = False,
                   links: Callable[[], Sequence[bytes]] | None = None) -> EncodedBlock:
    """encode_block of the same events kept by column (one list per ROW_COLUMNS name, equally
    long, lists the encoder may keep): how the SQLite writer hands a transaction's events over.
    `links`: when given, returns the block's links (columns[HASH] is not read), and is asked for
    them (and link_before) only after everything else is encoded: the writer's blocks are
    encoded while their links are being made."""
    if not columns[SEQ]:
        raise ValueError("an empty block")
    sections: list[bytes] = []
    spec: dict[str, Any] = {}
    for name in _INT_COLUMNS:
        spec[name] = _encode_int(columns[ROW_COLUMNS.index(name)], name in _DELTA_COLUMNS, sections)
    for name in _STR_COLUMNS:
        if name == "id" and derived_ids:
            spec[name] = {"c": None}
        else:
            spec[name] = _encode_str(columns[ROW_COLUMNS.index(name)], sections)
    seqs, times = columns[SEQ], columns[TIME]
    count = len(seqs)
    bloom = word_bloom(columns)
    request_bloom, user_bloom = key_blooms(columns[REQUEST_ID], columns[USER])
    summary = {}
    for name in SUMMARY_COLUMNS:
        distinct = set(columns[ROW_COLUMNS.index(name)])
        if len(distinct) <= MAX_SUMMARY_VALUES:
            summary[name] = sorted(distinct, key=lambda v: (v is not None, v or ""))
    # What needs the links, last.
    block_links = columns[HASH] if links is None else links()
    runs = [[start, end, bytes(link_before(start)).hex(), bytes(block_links[at]).hex()]
            for start, end, at in _runs(seqs)]
    sections.append(_native.link_prefixes(block_links, LINK_PREFIX) if _native is not None
                    else b"".join([bytes(link[:LINK_PREFIX]) for link in block_links]))
    spec["link_prefix"] = {"b": len(sections) - 1}
    header = json.dumps({"format": FORMAT, "count": count, "runs": runs, "columns": spec,
                         "sections": [len(s) for s in sections]}).encode()
    payload = len(header).to_bytes(4, "little") + header + b"".join(sections)
    return EncodedBlock(
        min_seq=seqs[0], max_seq=seqs[-1], min_time=min(times), max_time=max(times), count=count,
        min_level=min(columns[LEVEL]), namespace=columns[NAMESPACE][0], host=columns[HOST][0],
        summary=json.dumps(summary), bloom=bloom, request_bloom=request_bloom, user_bloom=user_bloom,
        data=_zstd_compress(payload), origins=_origin_spans(columns[ORIGIN], columns[POS]))


# -- decoding ---------------------------------------------------------------------------------------

@dataclass
class DecodedBlock:
    """A block's events as rows in ROW_COLUMNS order. `id` is None where it is the derived one
    (fill_ids); `hash` is LINK_PREFIX bytes, or the whole link at a run's end. With the C loops
    the rows are not tracked by the cycle collector (they hold str, int, bytes and None; thousands
    of new lists a block would start collections): put no container into a row."""

    rows: list[list[Any]]
    runs: list[Run]


def _decode_column(spec: dict[str, Any], count: int, sections: list[bytes], is_str: bool) -> list[Any]:
    values: list[Any]
    kind = str if is_str else int
    if "c" in spec:
        return _constant_column(spec["c"], count, kind)
    if "j" in spec:
        values = list(json.loads(sections[spec["j"]]))
        if not all(v is None or isinstance(v, kind) for v in values):
            raise BlockError(f"a value that is not {kind.__name__} in a column of them")
    elif "q" in spec and not is_str:
        numbers = array("q", sections[spec["q"]])
        values = list(itertools.accumulate(numbers)) if spec.get("d") else numbers.tolist()
    elif "s" in spec and is_str:
        text = sections[spec["s"]].decode("utf-8", "surrogatepass")
        values = text.split("\x00")
        if "n" in spec:
            for i in spec["n"]:
                values[i] = None
        elif spec.get("e"):
            values = [v if v else None for v in values]
    else:
        raise BlockError(f"a column spec {spec!r:.80} of no known kind")
    if len(values) != count:
        raise BlockError(f"column of {len(values)} values in a block of {count}")
    return values


def _constant_column(value: Any, count: int, kind: type) -> list[Any]:
    if not (value is None or isinstance(value, kind)):
        raise BlockError(f"a constant {type(value).__name__} in a column of {kind.__name__}")
    return [value] * count


class Payload:
    """A payload opened and checked, its columns not decoded yet: what decode_block and the
    reader's column-wise BlockColumns (block_columns.py) both start from. The seqs and links of
    all its events are built when first asked for: a search that keeps a few events of a block
    asks for theirs alone (seqs_of, links_of)."""

    def __init__(self, count: int, runs: list[Run], specs: dict[str, Any], sections: list[bytes], prefixes: bytes):
        self.count = count
        self.runs = runs
        self.specs = specs
        self.sections = sections
        self._prefixes = prefixes
        self._run_starts = list(itertools.accumulate((run.end - run.start + 1 for run in runs[:-1]), initial=0))

    @functools.cached_property
    def seqs(self) -> list[int]:
        seqs: list[int] = []
        for run in self.runs:
            seqs.extend(range(run.start, run.end + 1))
        return seqs

    @functools.cached_property
    def links(self) -> list[bytes]:
        """LINK_PREFIX bytes an event, the whole link at each run's end."""
        prefixes = self._prefixes
        links = (_native.split(prefixes, LINK_PREFIX) if _native is not None
                 else [prefixes[i:i + LINK_PREFIX] for i in range(0, len(prefixes), LINK_PREFIX)])
        for start, run in zip(self._run_starts, self.runs):
            links[start + run.end - run.start] = run.link_end
        return links

    def seqs_of(self, indexes: Sequence[int]) -> list[int]:
        """The seqs of events `indexes` (positions in the block)."""
        if "seqs" in self.__dict__:
            return [self.seqs[i] for i in indexes]
        starts, runs = self._run_starts, self.runs
        return [runs[r].start + i - starts[r] for i in indexes for r in (bisect.bisect_right(starts, i) - 1,)]

    def links_of(self, indexes: Sequence[int]) -> list[bytes]:
        """The `hash` of events `indexes`: LINK_PREFIX bytes, or the whole link at a run's end."""
        if "links" in self.__dict__:
            return [self.links[i] for i in indexes]
        ends = {start + run.end - run.start: run.link_end for start, run in zip(self._run_starts, self.runs)}
        prefixes = self._prefixes
        return [ends.get(i) or prefixes[i * LINK_PREFIX:(i + 1) * LINK_PREFIX] for i in indexes]


def open_payload(data: bytes) -> Payload:
    """Decompress and check a stored payload's frame, header, sections, runs and links; BlockError
    when any of it does not hold (also for a header that would make it allocate without bound)."""
    try:
        return _open(_zstd_decompress(data, max_output_size=_MAX_BLOCK_BYTES))
    except BlockError:
        raise
    except (zstandard.ZstdError, ValueError, KeyError, TypeError, IndexError, AttributeError, OverflowError,
            RecursionError) as exc:
        raise BlockError(f"not a readable block: {exc}") from None


def _open(payload: bytes) -> Payload:
    size = int.from_bytes(payload[:4], "little")
    header = json.loads(payload[4:4 + size])
    if header["format"] != FORMAT:
        raise BlockError(f"a block of format {header['format']}, not {FORMAT}")
    sections, offset = [], 4 + size
    for length in header["sections"]:
        if not 0 <= length <= len(payload) - offset:
            raise BlockError("a section past the payload's end")
        sections.append(payload[offset:offset + length])
        offset += length
    count = int(header["count"])
    specs = header["columns"]
    prefixes = sections[specs["link_prefix"]["b"]]
    # The link prefixes bound the count (every column is as long), before anything is allocated.
    if count < 1 or offset != len(payload) or len(prefixes) != count * LINK_PREFIX:
        raise BlockError(f"a block of {count} events with {len(prefixes)} bytes of links")
    runs = [Run(int(s), int(e), bytes.fromhex(b), bytes.fromhex(l)) for s, e, b, l in header["runs"]]
    seen = 0
    for run in runs:
        if run.end < run.start or seen + run.end - run.start >= count:
            raise BlockError(f"a block of {count} events with a run {run.start}..{run.end} too many")
        seen += run.end - run.start + 1
    if seen != count:
        raise BlockError(f"a block of {count} events with {seen} seqs")
    return Payload(count, runs, specs, sections, prefixes)


def decode_column(opened: Payload, name: str) -> list[Any]:
    """One column's values (a stored column: not `seq` or `hash`); BlockError when it does not decode."""
    try:
        return _decode_column(opened.specs[name], opened.count, opened.sections, name in _STR_COLUMNS)
    except BlockError:
        raise
    except (ValueError, KeyError, TypeError, IndexError, AttributeError, OverflowError, RecursionError) as exc:
        raise BlockError(f"not a readable block: column {name}: {exc}") from None


def pick_column(opened: Payload, name: str, indexes: Sequence[int]) -> list[Any]:
    """Values `indexes` (ascending positions) of one stored column, found in its section
    without decoding the others where the column is joined text or integers (a search keeping a
    few events of a block: splitting its whole message column cost most of its time); BlockError
    when it does not decode."""
    spec = opened.specs[name]
    is_str = name in _STR_COLUMNS
    kind = "s" if is_str else "q"
    if "c" in spec:         # one value for every event: as many copies as asked for
        return _constant_column(spec["c"], len(indexes), str if is_str else int)
    if _native is None or kind not in spec:
        column = decode_column(opened, name)
        return [column[i] for i in indexes]
    try:
        section = opened.sections[spec[kind]]
        if not is_str:
            if len(section) != opened.count * 8:
                raise BlockError(f"column of {len(section) // 8} values in a block of {opened.count}")
            return _native.pick_ints(section, bool(spec.get("d")), indexes)
        values: list[Any] = _native.pick_strs(section, indexes)
        if "n" in spec:
            nulls = set(spec["n"])
            values = [None if i in nulls else v for i, v in zip(indexes, values)]
        elif spec.get("e"):
            values = [v if v else None for v in values]
        return values
    except BlockError:
        raise
    except (ValueError, KeyError, TypeError, IndexError, OverflowError) as exc:
        raise BlockError(f"not a readable block: column {name}: {exc}") from None


def decode_block(data: bytes) -> DecodedBlock:
    """The rows of a stored payload; BlockError when it does not decode."""
    opened = open_payload(data)
    values: dict[str, list[Any]] = {name: decode_column(opened, name) for name in (*_INT_COLUMNS, *_STR_COLUMNS)}
    values["seq"] = opened.seqs
    values["hash"] = opened.links
    ordered = [values[name] for name in ROW_COLUMNS]
    rows: list[list[Any]] = (_native.rows(ordered, opened.count) if _native is not None
                             else [list(row) for row in zip(*ordered)])
    return DecodedBlock(rows, opened.runs)


def event_ids(host: str, source_key: str, positions: Sequence[int]) -> list[str]:
    """The derived event ids (contract §4.2) of one source's positions: what fill_ids puts into
    rows, made by the intake while it prepares a batch (off the writer's thread)."""
    if _native is not None:
        return _native.event_ids(host, source_key, positions)
    from fleetlog.common.ids import event_ids_of
    return list(map(event_ids_of(host, source_key), positions))


def fill_ids(rows: list[list[Any]], source_keys: dict[int, tuple[str, str]]) -> None:
    """Put each row's event id back (contract §4.2): from (host, source_key) of its origin and
    its pos, where the block did not keep one."""
    if _native is not None:
        _native.fill_ids(rows, ID, ORIGIN, POS, source_keys)
        return
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
