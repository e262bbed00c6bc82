"""The file source: tails files matched by globs.

Identity: a file is known by a fingerprint of its first bytes (`fingerprint_bytes`, after
`ignored_header_bytes`), not by its path or inode, so a renamed file keeps its identity and its
checkpoint. Positions are byte offsets of each line's start, which (with the identity) make the
event's deterministic id. Lines longer than `max_line_bytes` are cut and marked truncated;
invalid UTF-8 is kept with replacement characters and `fields.invalid_utf8 = true`.
"""

from __future__ import annotations

import asyncio
import glob
import hashlib
import logging
import os
import pathlib
from dataclasses import dataclass
from typing import Any, Callable

from agent.checkpoints import CheckpointFile
from agent.config import FileSourceConfig
from agent.filters import EventFilter
from agent.parse import Parsed, make_parser
from agent.sources.base import FLAG_TRUNCATED, Emit, Record, SourceBatch
from common.timefmt import now_us
from common.wildcard import wildcard_match

log = logging.getLogger("fleetlog.agent.file")

READ_SIZE = 1024 * 1024
POLL_INTERVAL = 0.05
RESCAN_INTERVAL = 1.0


@dataclass
class _Tail:
    path: str
    identity: str
    handle: Any
    offset: int            # next byte to read
    committed: int         # durable downstream
    pending: bytes = b""   # partial last line
    skipping: bool = False # inside an over-long line after its cut


def fingerprint(path: str, size: int, skip: int) -> str | None:
    """Hex digest of bytes [skip, skip+size), or of the first line when the file is shorter;
    None while the file has no complete first line yet."""
    try:
        with open(path, "rb") as handle:
            handle.seek(skip)
            head = handle.read(size)
    except OSError:
        return None
    if len(head) < size:
        newline = head.find(b"\n")
        if newline < 0:
            return None
        head = head[:newline + 1]
    return hashlib.sha256(head).hexdigest()[:32]


class FileSource:
    def __init__(self, config: FileSourceConfig, state_dir: pathlib.Path,
                 on_read: Callable[[str, int], None] | None = None):
        self.config = config
        self.name = config.name or "file-" + hashlib.sha256("\0".join(config.paths).encode()).hexdigest()[:12]
        self.checkpoints = CheckpointFile(state_dir / "sources" / self.name / "checkpoints.json")
        self.parse = make_parser(config.parser, config.pattern)
        self.filters = EventFilter(config.include, config.exclude_events)
        self.on_read = on_read or (lambda source, n: None)
        self._tails: dict[str, _Tail] = {}
        self._first_scan = True

    # -- discovery -----------------------------------------------------------------------

    def _matching_paths(self) -> list[str]:
        found: set[str] = set()
        for pattern in self.config.paths:
            for path in glob.glob(pattern):
                name = os.path.basename(path)
                if any(wildcard_match(ex, name) or wildcard_match(ex, path) for ex in self.config.exclude_paths):
                    continue
                if os.path.isfile(path):
                    found.add(os.path.abspath(path))
        return sorted(found)

    def _scan(self) -> None:
        for path in self._matching_paths():
            if path in self._tails:
                continue
            identity = fingerprint(path, self.config.fingerprint_bytes, self.config.ignored_header_bytes)
            if identity is None:
                continue
            saved = self.checkpoints.data.get(identity)
            try:
                handle = open(path, "rb")
            except OSError as exc:
                log.warning("cannot open %s: %s", path, exc.strerror)
                continue
            if saved is not None:
                offset = int(saved["offset"])
            elif self.config.start_at == "end" and self._first_scan:
                offset = os.fstat(handle.fileno()).st_size
            else:
                offset = 0
            handle.seek(offset)
            self._tails[path] = _Tail(path, identity, handle, offset, offset)
            log.info("tailing %s from offset %d", path, offset)
        self._first_scan = False

    # -- reading -------------------------------------------------------------------------

    async def run(self, emit: Emit) -> None:
        loop = asyncio.get_running_loop()
        last_scan = 0.0
        while True:
            if loop.time() - last_scan >= RESCAN_INTERVAL:
                self._scan()
                last_scan = loop.time()
            progressed = False
            for tail in list(self._tails.values()):
                batch = self._read(tail)
                if batch is not None:
                    progressed = True
                    await emit(batch)
            if not progressed:
                await asyncio.sleep(POLL_INTERVAL)

    def _read(self, tail: _Tail) -> SourceBatch | None:
        data = tail.handle.read(READ_SIZE)
        if not data:
            return None
        start = tail.offset - len(tail.pending)
        tail.offset += len(data)
        if tail.skipping:
            # The rest of a line that was cut at max_line_bytes: discard up to its newline.
            newline = data.find(b"\n")
            if newline < 0:
                return self._batch(tail, [], tail.offset, len(data))
            tail.skipping = False
            start += newline + 1
            data = data[newline + 1:]
        buffer = tail.pending + data if tail.pending else data
        end = buffer.rfind(b"\n")
        if end < 0:
            if len(buffer) <= self.config.max_line_bytes:
                tail.pending = buffer
                return None
            # An over-long line with no newline yet: send its first max_line_bytes now.
            tail.pending, tail.skipping = b"", True
            records = self._records(buffer[:self.config.max_line_bytes] + b"\n", start, truncated=True)
            return self._batch(tail, records, tail.offset, len(buffer))
        tail.pending = buffer[end + 1:]
        records = self._records(buffer[:end + 1], start)
        return self._batch(tail, records, start + end + 1, end + 1)

    def _batch(self, tail: _Tail, records: list[Record], checkpoint: int, nbytes: int) -> SourceBatch:
        self.on_read(self.label(tail), len(records))
        return SourceBatch(source=self.label(tail), source_key=tail.identity, log_type=self.config.log_type,
                           records=records, checkpoint=(tail.identity, checkpoint, tail.path),
                           read_bytes=nbytes, min_level=int(self.config.min_level),
                           filters=self.filters or None)

    def label(self, tail: _Tail) -> str:
        return f"file:{tail.path}"

    def _records(self, block: bytes, start: int, truncated: bool = False) -> list[Record]:
        """Records of the newline-terminated lines in `block`, which starts at byte `start`."""
        records: list[Record] = []
        parse = self.parse
        limit = self.config.max_line_bytes
        read_time = now_us()
        app = self.config.app
        position = start
        for raw in block.split(b"\n")[:-1]:
            line_start = position
            position += len(raw) + 1
            flags = FLAG_TRUNCATED if truncated else 0
            if len(raw) > limit:
                raw, flags = raw[:limit], FLAG_TRUNCATED
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            try:
                parsed = parse(raw.decode("utf-8"))
            except UnicodeDecodeError:
                parsed = parse(raw.decode("utf-8", "replace"))
                parsed = parsed._replace(fields={**(parsed.fields or {}), "invalid_utf8": True})
            if not text_is_blank(parsed):
                records.append(Record(line_start, parsed, app, 0, flags, read_time))
        return records

    # -- commits -------------------------------------------------------------------------

    def commit(self, checkpoint: Any) -> None:
        identity, offset, path = checkpoint
        self.checkpoints.data[identity] = {"offset": offset, "path": path}
        self.checkpoints.save()
        tail = self._tails.get(path)
        if tail is not None and tail.identity == identity:
            tail.committed = offset

    def lag_bytes(self) -> dict[str, int]:
        lags = {}
        for tail in self._tails.values():
            try:
                size = os.fstat(tail.handle.fileno()).st_size
            except OSError:
                continue
            lags[self.label(tail)] = max(0, size - tail.committed)
        return lags


def text_is_blank(parsed: Parsed) -> bool:
    return not parsed.message.strip() and not parsed.fields
