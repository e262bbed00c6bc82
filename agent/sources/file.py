"""The file source: tails the files matched by globs, through rotation, restarts and bad input.

Identity is content, not path (see file_identity): a renamed file keeps its identity and
checkpoint; a truncated file (copytruncate) gets a new one; a second file starting with the same
first line gets an anchored one. Each open file is read through its own descriptor, so a file
renamed or deleted while open is drained to its end; it is let go only after it has left the
globs (or was deleted) and stayed at end-of-file for ROTATE_WAIT, and then a last line without
newline is flushed as-is.

Rotation rules that keep "every line exactly once":
- rename+create: the old inode keeps its identity and is drained; the new file is new content.
- copytruncate: the truncation is noticed (size below our offset, or the first line changed)
  and the identity is released at the position read so far; if the copy is in the globs it takes
  the identity over from that position (draining what we had not read yet), instead of being
  read again as a new file.
- a file whose bytes are, so far, identical to a file being read (a copy in progress, or a new
  file holding only the same header) is not read until it diverges or the original goes away.

Positions are byte offsets of each line's start (of the first line, for a multiline event); with
the identity they make the event's deterministic id. A batch's checkpoint never passes a partial
last line or a held multiline event, so a restart resumes exactly.
"""

from __future__ import annotations

import asyncio
import glob
import hashlib
import logging
import os
import pathlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from fleetlog.agent.checkpoints import CheckpointFile
from fleetlog.agent.parse import make_parser, native_ascii_records, python_parse_auto
from fleetlog.agent.sources.base import FLAG_TRUNCATED, Emit, Record, SourceBatch
from fleetlog.agent.sources.file_identity import (
    CHECK_BYTES,
    Fingerprint,
    check_at,
    check_of,
    fingerprint_fd,
    fingerprint_matches,
    same_prefix,
)
from fleetlog.agent.sources.multiline import JoinedLine, MultilineConfig, MultilineJoiner
from fleetlog.common.config import FieldError, LevelName, Size, check_regex
from fleetlog.common.event_filter import EventFilter, FieldPattern
from fleetlog.common.levels import Level
from fleetlog.common.timefmt import now_us
from fleetlog.common.wildcard import wildcard_match

log = logging.getLogger("fleetlog.agent.file")


@dataclass(frozen=True)
class FileSourceConfig:
    type: Literal["file"]
    paths: tuple[str, ...]
    name: str = ""                      # checkpoint folder name; default: derived from paths
    # Path globs (strings) and event filters (`{ field, pattern }` tables) share this key.
    exclude: tuple[str | FieldPattern, ...] = ()
    start_at: Literal["beginning", "end"] = "beginning"
    log_type: str = "application"
    app: str = ""
    parser: Literal["auto", "json", "regex", "plain"] = "auto"
    pattern: str = ""
    multiline: MultilineConfig | None = None
    max_line_bytes: Size = 64 * 1024
    fingerprint_bytes: int = 256
    ignored_header_bytes: int = 0
    min_level: LevelName = Level.DEBUG
    include: tuple[FieldPattern, ...] = ()

    @property
    def exclude_paths(self) -> tuple[str, ...]:
        return tuple(e for e in self.exclude if isinstance(e, str))

    @property
    def exclude_events(self) -> tuple[FieldPattern, ...]:
        return tuple(e for e in self.exclude if isinstance(e, FieldPattern))

    def validate(self) -> None:
        if not self.paths:
            raise FieldError("paths", "needs at least one path or glob")
        if self.parser == "regex":
            if not self.pattern:
                raise FieldError("pattern", 'required when parser = "regex"')
            check_regex("pattern", self.pattern)
        if self.max_line_bytes < 16:
            raise FieldError("max_line_bytes", "must be at least 16 bytes")
        if self.fingerprint_bytes < 1:
            raise FieldError("fingerprint_bytes", "must be at least 1")

READ_SIZE = 256 * 1024
POLL_INTERVAL = 0.05
RESCAN_INTERVAL = 1.0
ROTATE_WAIT = 5.0          # a rotated/deleted file idle this long at its end is let go
_INVALID_UTF8 = 0x80       # internal flag bit between line splitting and parsing


@dataclass
class _Tail:
    key: str               # identity: fingerprint, or fingerprint@dev:ino for a colliding file
    fp: Fingerprint
    path: str
    fd: int
    dev: int
    ino: int
    offset: int            # next byte to read
    committed: int         # durable downstream
    pending: bytes = b""   # partial last line
    recent: bytes = b""    # the CHECK_BYTES bytes before offset - len(pending)
    skip_from: int | None = None   # start of an over-long line whose rest is being skipped
    matched: bool = True   # still matched by the globs at the last scan
    idle_since: float | None = None
    joiner: MultilineJoiner | None = None


class FileSource:
    def __init__(self, config: FileSourceConfig, state_dir: pathlib.Path,
                 on_read: Callable[[str, int], None] | None = None):
        self.config = config
        self.name = config.name or "file-" + hashlib.sha256("\0".join(config.paths).encode()).hexdigest()[:12]
        checkpoint_path = state_dir / "sources" / self.name / "checkpoints.json"
        # start_at = "end" applies only on the very first start of this source: after a restart
        # a file without a checkpoint is new content (rotated in while we were down) and is read
        # from its beginning, or lines would be lost.
        self._fresh = not checkpoint_path.exists()
        self.checkpoints = CheckpointFile(checkpoint_path)
        self.parse = make_parser(config.parser, config.pattern)
        # parser = "auto": blocks are split, parsed and wrapped in C when the extension is built.
        self.native_records = native_ascii_records if config.parser == "auto" else None
        self.filters = EventFilter(config.include, config.exclude_events)
        self.on_read = on_read or (lambda source, n: None)
        self._tails: dict[str, _Tail] = {}
        self._by_inode: dict[tuple[int, int], str] = {}
        self._released: dict[str, int] = {}   # identity -> position read, when let go unfinished
        self._first_scan = True
        self._scan_now = True
        self._warned: set[str] = set()

    # -- discovery -----------------------------------------------------------------------

    def _matching_paths(self) -> list[str]:
        found: set[str] = set()
        for pattern in self.config.paths:
            for path in glob.glob(pattern):
                name = os.path.basename(path)
                if any(wildcard_match(ex, name) or wildcard_match(ex, path) for ex in self.config.exclude_paths):
                    continue
                found.add(os.path.abspath(path))
        return sorted(found)

    def _scan(self) -> None:
        # Truncations first: a copy must find its original's identity released, not taken.
        for tail in list(self._tails.values()):
            self._intact_or_release(tail)
        seen: set[tuple[int, int]] = set()
        for path in self._matching_paths():
            try:
                st = os.stat(path)
            except OSError:
                continue
            if not os.path.isfile(path):
                continue
            inode = (st.st_dev, st.st_ino)
            seen.add(inode)
            key = self._by_inode.get(inode)
            if key is not None:
                self._tails[key].path = path
            else:
                self._discover(path)
        for tail in self._tails.values():
            tail.matched = (tail.dev, tail.ino) in seen
        self._first_scan = False

    def _discover(self, path: str) -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            if path not in self._warned:
                self._warned.add(path)
                log.warning("cannot open %s: %s", path, exc.strerror)
            return
        kept = False
        try:
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) in self._by_inode:
                return
            fp = fingerprint_fd(fd, self.config.fingerprint_bytes, self.config.ignored_header_bytes)
            if fp is None:
                return
            for other in list(self._tails.values()):
                if other.fp != fp or not self._intact_or_release(other):
                    continue
                if same_prefix(fd, st.st_size, other.fd, os.fstat(other.fd).st_size):
                    return   # a copy of `other`, or identical so far: decide at a later scan
            key, offset = self._identity_for(fd, fp, st, path)
            tail = _Tail(key, fp, path, fd, st.st_dev, st.st_ino, offset, offset,
                         recent=self._bytes_before(fd, offset))
            if self.config.multiline is not None:
                tail.joiner = MultilineJoiner(self.config.multiline.start_pattern,
                                              self.config.multiline.max_wait, self.config.max_line_bytes)
            self._tails[key] = tail
            self._by_inode[(st.st_dev, st.st_ino)] = key
            kept = True
            log.info("tailing %s from offset %d (identity %s)", path, offset, key)
        finally:
            if not kept:
                os.close(fd)

    def _identity_for(self, fd: int, fp: Fingerprint, st: os.stat_result, path: str) -> tuple[str, int]:
        """The checkpoint this file continues, or a new identity; persisted before reading."""
        data = self.checkpoints.data
        best: tuple[tuple[bool, int], str, int] | None = None
        for key, entry in data.items():
            if key in self._tails or entry.get("fp") != fp.digest or entry.get("fp_len") != fp.length:
                continue
            offset = int(entry.get("offset", 0))
            if st.st_size < offset:
                continue
            if entry.get("check") and check_at(fd, offset) != entry["check"]:
                continue   # same first line, different content before the offset: not this file
            rank = (entry.get("dev") == st.st_dev and entry.get("ino") == st.st_ino, offset)
            if best is None or rank > best[0]:
                best = (rank, key, offset)
        if best is not None:
            key = best[1]
            offset = max(best[2], self._released.pop(key, 0))
        else:
            key = fp.digest
            if key in data or key in self._tails:
                key = base = f"{fp.digest}@{st.st_dev}:{st.st_ino}"
                generation = 1
                while key in data or key in self._tails:
                    generation += 1
                    key = f"{base}#{generation}"
            offset = 0
            if self.config.start_at == "end" and self._fresh and self._first_scan:
                offset = _after_last_newline(fd, st.st_size)
            data[key] = {"fp": fp.digest, "fp_len": fp.length, "offset": offset, "check": check_at(fd, offset)}
        data[key].update(path=path, dev=st.st_dev, ino=st.st_ino, seen=int(time.time()))
        self._prune()
        self.checkpoints.save()
        return key, offset

    def _prune(self, keep: int = 1000) -> None:
        data = self.checkpoints.data
        if len(data) <= keep:
            return
        idle = sorted((entry.get("seen", 0), key) for key, entry in data.items() if key not in self._tails)
        for _, key in idle[:len(data) - keep]:
            del data[key]

    @staticmethod
    def _bytes_before(fd: int, offset: int) -> bytes:
        start = max(0, offset - CHECK_BYTES)
        try:
            return os.pread(fd, offset - start, start)
        except OSError:
            return b""

    # -- letting go ----------------------------------------------------------------------

    def _intact_or_release(self, tail: _Tail) -> bool:
        """False (and the tail let go) when its file was truncated or rewritten in place."""
        try:
            size = os.fstat(tail.fd).st_size
        except OSError:
            size = -1
        if size >= tail.offset and fingerprint_matches(tail.fd, tail.fp, self.config.ignored_header_bytes) \
                and self._recent_matches(tail):
            return True
        log.info("%s was truncated at offset %d; it is new content now", tail.path, tail.offset)
        # A copy of it may still hold what we had not read: it continues from here.
        position = tail.offset - len(tail.pending)
        if tail.joiner is not None and tail.joiner.held_start is not None:
            position = tail.joiner.held_start
        self._released[tail.key] = position
        self._close(tail)
        self._scan_now = True
        return False

    @staticmethod
    def _recent_matches(tail: _Tail) -> bool:
        """The bytes before our position are still there: catches a truncation that was written
        past our offset again before we looked, even under an unchanged first line."""
        if not tail.recent:
            return True
        end = tail.offset - len(tail.pending)
        try:
            return os.pread(tail.fd, len(tail.recent), end - len(tail.recent)) == tail.recent
        except OSError:
            return False

    def _close(self, tail: _Tail) -> None:
        self._tails.pop(tail.key, None)
        self._by_inode.pop((tail.dev, tail.ino), None)
        try:
            os.close(tail.fd)
        except OSError:
            pass

    # -- reading -------------------------------------------------------------------------

    async def run(self, emit: Emit) -> None:
        loop = asyncio.get_running_loop()
        last_scan = 0.0
        try:
            while True:
                now = loop.time()
                if self._scan_now or now - last_scan >= RESCAN_INTERVAL:
                    self._scan_now = False
                    self._scan()
                    last_scan = now
                progressed = False
                for tail in list(self._tails.values()):
                    batch, more = self._read(tail, now)
                    progressed = progressed or more
                    if batch is not None:
                        await emit(batch)
                if not progressed:
                    await asyncio.sleep(POLL_INTERVAL)
        finally:
            for tail in list(self._tails.values()):
                self._close(tail)

    def _read(self, tail: _Tail, now: float) -> tuple[SourceBatch | None, bool]:
        """One step for one file: (a batch to emit or None, whether bytes were consumed)."""
        try:
            st = os.fstat(tail.fd)
        except OSError:
            self._close(tail)
            return None, False
        if st.st_size == tail.offset:
            return self._at_end(tail, st, now), False
        if not self._intact_or_release(tail):
            return None, False
        tail.idle_since = None
        data = os.pread(tail.fd, min(READ_SIZE, st.st_size - tail.offset), tail.offset)
        if not self._intact_or_release(tail):   # rewritten while we read: those bytes are not its
            return None, False
        return self._consume(tail, data, now), True

    def _at_end(self, tail: _Tail, st: os.stat_result, now: float) -> SourceBatch | None:
        if tail.idle_since is None:
            tail.idle_since = now
        gone = not tail.matched or st.st_nlink == 0
        if gone and now - tail.idle_since >= ROTATE_WAIT:
            # Let go of a drained rotated/deleted file; its unterminated last line goes as-is.
            lines: list[JoinedLine] = []
            if tail.pending:
                self._split(tail, tail.pending + b"\n", tail.offset - len(tail.pending), now, lines)
                tail.pending = b""
            if tail.joiner is not None:
                tail.joiner.flush(lines)
            self._close(tail)
            log.info("let go of %s at offset %d", tail.path, tail.offset)
            return self._batch(tail, self._parse(lines), tail.offset, check_of(tail.recent), 0)
        if tail.joiner is not None and tail.joiner.due(now):
            lines = []
            tail.joiner.flush(lines)
            end = tail.offset - len(tail.pending)
            return self._batch(tail, self._parse(lines), end, check_of(tail.recent), 0)
        return None

    def _consume(self, tail: _Tail, data: bytes, now: float) -> SourceBatch | None:
        limit = self.config.max_line_bytes
        start = tail.offset - len(tail.pending)       # position of buffer[0]
        buffer = tail.pending + data if tail.pending else data
        before = tail.recent                           # bytes before buffer[0]
        tail.offset += len(data)
        if tail.skip_from is not None:
            # The rest of a line cut at max_line_bytes: discard up to its newline. The checkpoint
            # stays at the line's start, so a restart re-sends the same (deduplicated) head.
            newline = buffer.find(b"\n")
            if newline < 0:
                tail.recent = _last(before, buffer)
                return None
            tail.skip_from = None
            before = _last(before, buffer[:newline + 1])
            start += newline + 1
            buffer = buffer[newline + 1:]
        end = buffer.rfind(b"\n")
        lines: list[JoinedLine] = []
        if end < 0:
            if len(buffer) <= limit:
                tail.pending, tail.recent = buffer, before
                return None
            # An over-long line with no newline yet: send its first max_line_bytes now.
            self._split(tail, buffer[:limit] + b"\n", start, now, lines, FLAG_TRUNCATED)
            tail.pending, tail.skip_from, tail.recent = b"", start, _last(before, buffer)
            return self._batch(tail, self._parse(lines), start, check_of(before), len(buffer))
        block = buffer[:end + 1]
        tail.pending = buffer[end + 1:]
        tail.recent = _last(before, block)
        checkpoint, check = start + end + 1, check_of(tail.recent)
        if tail.joiner is None and (self.native_records is not None or block.isascii()):
            return self._batch(tail, self._records(block, start), checkpoint, check, len(block))
        self._split(tail, block, start, now, lines)
        if tail.joiner is not None and tail.joiner.held_start is not None:
            checkpoint, check = tail.joiner.held_start, ""
        return self._batch(tail, self._parse(lines), checkpoint, check, len(block))

    def _records(self, block: bytes, start: int) -> list[Record]:
        """The hot path (no multiline): split, parse and wrap in one pass over the lines. In C for
        parser = "auto" (any bytes: what _split and _parse do for a block that is not ASCII, it
        does too); else here, for ASCII blocks."""
        parse = self.parse
        limit = self.config.max_line_bytes
        app = self.config.app
        read_time = now_us()
        if self.native_records is not None:
            return self.native_records(block, start, limit, app, read_time, Record, python_parse_auto)
        records: list[Record] = []
        append = records.append
        texts = block.decode("ascii").split("\n")
        texts.pop()
        position = start
        for text in texts:
            line_start = position
            position += len(text) + 1
            if not text or text.isspace():
                continue
            flags = 0
            if len(text) > limit:
                text, flags = text[:limit], FLAG_TRUNCATED
            if text[-1] == "\r":
                text = text[:-1]
            append(Record(line_start, parse(text), app, 0, flags, read_time))
        return records

    def _split(self, tail: _Tail, block: bytes, start: int, now: float, out: list[JoinedLine],
               extra_flags: int = 0) -> None:
        """The newline-terminated lines of `block` (which starts at byte `start`) as text, cut at
        max_line_bytes; through the multiline joiner when configured. Blank lines are skipped."""
        limit = self.config.max_line_bytes
        joiner = tail.joiner
        append = out.append
        position = start
        if block.isascii():
            # The common case: one decode for the whole block, and characters are bytes.
            texts = block.decode("ascii").split("\n")
            texts.pop()
            for text in texts:
                line_start = position
                position += len(text) + 1
                if not text or text.isspace():
                    continue
                flags = extra_flags
                if len(text) > limit:
                    text, flags = text[:limit], flags | FLAG_TRUNCATED
                if text[-1] == "\r":
                    text = text[:-1]
                if joiner is None:
                    append(JoinedLine(line_start, text, flags))
                else:
                    joiner.feed(line_start, text, flags, now, out)
            return
        raws = block.split(b"\n")
        raws.pop()
        for raw in raws:
            line_start = position
            position += len(raw) + 1
            flags = extra_flags
            if len(raw) > limit:
                raw, flags = raw[:limit], flags | FLAG_TRUNCATED
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                text = raw.decode("utf-8", "replace")
                flags |= _INVALID_UTF8
            if not text or text.isspace():
                continue
            if joiner is None:
                append(JoinedLine(line_start, text, flags))
            else:
                joiner.feed(line_start, text, flags, now, out)

    def _parse(self, lines: list[JoinedLine]) -> list[Record]:
        parse = self.parse
        app = self.config.app
        read_time = now_us()
        records = []
        for position, text, flags in lines:
            parsed = parse(text)
            if flags & _INVALID_UTF8:
                flags &= ~_INVALID_UTF8
                parsed = parsed._replace(fields={**(parsed.fields or {}), "invalid_utf8": True})
            records.append(Record(position, parsed, app, 0, flags, read_time))
        return records

    def _batch(self, tail: _Tail, records: list[Record], checkpoint: int, check: str, nbytes: int) -> SourceBatch:
        label = self.label(tail)
        self.on_read(label, len(records))
        return SourceBatch(source=label, source_key=tail.key, log_type=self.config.log_type,
                           records=records, checkpoint=(tail.key, checkpoint, tail.path, check),
                           read_bytes=nbytes, min_level=int(self.config.min_level),
                           filters=self.filters or None)

    def label(self, tail: _Tail) -> str:
        return f"file:{tail.path}"

    # -- commits -------------------------------------------------------------------------

    def commit(self, checkpoint: Any) -> None:
        key, offset, path, check = checkpoint
        entry = self.checkpoints.data.setdefault(key, {})
        entry.update(offset=offset, path=path, check=check, seen=int(time.time()))
        self.checkpoints.save()
        tail = self._tails.get(key)
        if tail is not None:
            tail.committed = offset

    def lag_bytes(self) -> dict[str, int]:
        lags = {}
        for tail in list(self._tails.values()):
            try:
                size = os.fstat(tail.fd).st_size
            except OSError:
                continue
            lags[self.label(tail)] = max(0, size - tail.committed)
        return lags


def _last(before: bytes, block: bytes) -> bytes:
    """The last CHECK_BYTES bytes of before + block, without copying a large block."""
    if len(block) >= CHECK_BYTES:
        return block[-CHECK_BYTES:]
    return (before + block)[-CHECK_BYTES:]


def _after_last_newline(fd: int, size: int) -> int:
    """Where start_at = "end" begins: after the last complete line, so a line being written
    is read whole."""
    start = max(0, size - 64 * 1024)
    try:
        tail = os.pread(fd, size - start, start)
    except OSError:
        return size
    newline = tail.rfind(b"\n")
    return start + newline + 1 if newline >= 0 else (size if start else 0)

