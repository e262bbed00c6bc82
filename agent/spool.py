"""The agent's disk spool: sealed batches kept in `state_dir/spool` until the collector
acknowledges them.

Layout: segment files `<first batch id>.seg`, each a sequence of frames

    magic "FLS1" | payload length u32 | crc32 u32 | batch id u64 | events u32 | payload

(little-endian; the crc covers batch id, events and payload). A batch is written and fsynced
before `put` returns, so the pipeline may advance the source checkpoint right after it. A kill -9
in the middle of a write leaves a torn last frame: the length and checksum reveal it at the next
start and the segment is cut there (the source re-reads those lines, its checkpoint never moved).

Memory stays bounded whatever the spool holds: batches are read back from disk when sent, only
per-segment totals and the handful of batches in flight are kept in RAM. A segment is deleted
once every batch in it is acknowledged. Acknowledged ids are also noted (without fsync) in
`acked`, so a restart re-sends little; anything re-sent anyway is deduplicated by the collector.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import pathlib
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from fleetlog.agent.batcher import SealedBatch

log = logging.getLogger("fleetlog.agent.spool")

MAGIC = b"FLS1"
HEADER = struct.Struct("<4sIIQI")
MAX_PAYLOAD = 256 * 1024 * 1024
ACK_NOTE_INTERVAL = 0.5


@dataclass
class Segment:
    path: pathlib.Path
    first_id: int
    size: int = 0          # bytes of whole, durable frames
    last_id: int = 0       # highest batch id written (0: none yet)


@dataclass
class Frame:
    batch_id: int
    events: int
    payload: bytes
    end: int               # offset just past the frame


def _crc(batch_id: int, events: int, payload: bytes) -> int:
    return zlib.crc32(payload, zlib.crc32(struct.pack("<QI", batch_id, events)))


def encode_frame(batch_id: int, events: int, payload: bytes) -> bytes:
    return HEADER.pack(MAGIC, len(payload), _crc(batch_id, events, payload), batch_id, events) + payload


def read_frame(handle, offset: int, limit: int) -> Frame | None:
    """The whole, valid frame at `offset` (not extending past `limit`), or None."""
    if limit - offset < HEADER.size:
        return None
    handle.seek(offset)
    header = handle.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    magic, length, crc, batch_id, events = HEADER.unpack(header)
    end = offset + HEADER.size + length
    if magic != MAGIC or length > MAX_PAYLOAD or end > limit:
        return None
    payload = handle.read(length)
    if len(payload) < length or _crc(batch_id, events, payload) != crc:
        return None
    return Frame(batch_id, events, payload, end)


def scan_segment(path: pathlib.Path) -> Iterator[Frame]:
    """Every valid frame from the start of a segment up to the first torn or corrupt one."""
    with open(path, "rb") as handle:
        limit = os.fstat(handle.fileno()).st_size
        offset = 0
        while True:
            frame = read_frame(handle, offset, limit)
            if frame is None:
                return
            yield frame
            offset = frame.end


def _fsync_dir(path: pathlib.Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DiskSpool:
    """The agent's Outbox (see agent.outbox.Outbox) backed by segment files."""

    def __init__(self, directory: pathlib.Path, max_bytes: int, when_full: str = "block",
                 segment_bytes: int | None = None, on_drop: Callable[[int], None] | None = None):
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.when_full = when_full
        # Several segments per spool so that acknowledged space is given back early.
        self.segment_bytes = segment_bytes or max(64 * 1024, min(max_bytes // 8, 16 * 1024 * 1024))
        self.on_drop = on_drop or (lambda events: None)
        self._ack_path = self.dir / "acked"
        self._segments: list[Segment] = []
        self._write_handle: io.FileIO | None = None
        self._events = 0
        self._bytes = 0
        self.acked_upto = 0                 # every id <= this is acknowledged (or dropped)
        self.fault: str | None = None       # why the last write failed, until one succeeds
        self._acked_above: set[int] = set()  # acknowledged out of order
        self._in_flight: dict[int, tuple[int, int]] = {}  # sent, unacked: id -> (events, frame bytes)
        self._read_segment = 0              # index into _segments
        self._read_offset = 0
        self._read_handle: io.BufferedReader | None = None
        self._read_path: pathlib.Path | None = None
        self._changed = asyncio.Condition()
        self._last_note = 0.0
        self._recover()

    # -- start-up ------------------------------------------------------------------------

    def _recover(self) -> None:
        try:
            self.acked_upto = int(self._ack_path.read_text().strip() or 0)
        except (OSError, ValueError):
            self.acked_upto = 0
        paths = []
        for path in self.dir.glob("*.seg"):
            try:
                paths.append((int(path.stem), path))
            except ValueError:
                log.warning("spool: ignoring unexpected file %s", path.name)
        waiting = 0
        for first_id, path in sorted(paths):
            segment = Segment(path, first_id)
            for frame in scan_segment(path):
                segment.size, segment.last_id = frame.end, frame.batch_id
                if frame.batch_id > self.acked_upto:
                    waiting += 1
                    self._events += frame.events
                    self._bytes += HEADER.size + len(frame.payload)
            actual = path.stat().st_size
            if actual != segment.size:
                # A torn tail from a crash mid-write: its batch was never reported durable.
                log.warning("spool: %s: discarding %d bytes of an incomplete write", path.name,
                            actual - segment.size)
                with open(path, "r+b") as handle:
                    handle.truncate(segment.size)
                    os.fsync(handle.fileno())
            if segment.last_id == 0 or segment.last_id <= self.acked_upto:
                path.unlink()  # empty or fully acknowledged
                continue
            self._segments.append(segment)
        if self._segments:
            # Segments are deleted before the (throttled) note of acknowledgements is written:
            # everything before the oldest remaining segment was acknowledged.
            self.acked_upto = max(self.acked_upto, self._segments[0].first_id - 1)
            log.info("spool: %d batch(es), %d event(s) waiting from before the restart",
                     waiting, self._events)

    @property
    def next_batch_id(self) -> int:
        """Batch ids keep growing across restarts so that acks never name an older batch."""
        last = max((s.last_id for s in self._segments), default=0)
        return max(last, self.acked_upto) + 1

    # -- writing -------------------------------------------------------------------------

    def _open_segment(self, first_id: int) -> Segment:
        if self._write_handle is not None:
            self._write_handle.close()
            self._write_handle = None      # not a closed handle, if opening the next one fails
        segment = Segment(self.dir / f"{first_id:020d}.seg", first_id)
        self._write_handle = open(segment.path, "ab", buffering=0)  # noqa: SIM115 — kept open across puts
        _fsync_dir(self.dir)
        self._segments.append(segment)
        return segment

    def _write(self, frame: bytes, durable_size: int) -> None:
        """Append one frame and fdatasync it. On failure (a full disk, an I/O error) the segment
        is cut back to its durable frames, so a retry never appends after a torn one; unbuffered
        writes, so no half-written buffer is flushed again later."""
        assert self._write_handle is not None    # put opens the segment before it writes
        fd = self._write_handle.fileno()
        try:
            view = memoryview(frame)
            while view:
                view = view[os.write(fd, view):]
            os.fdatasync(fd)
        except OSError:
            try:
                os.ftruncate(fd, durable_size)
            except OSError as exc:
                log.error("spool: cannot cut %s back to %d bytes: %s", self._segments[-1].path.name,
                          durable_size, exc.strerror)
            raise

    async def put(self, batch: SealedBatch) -> None:
        """Append and fsync the batch; returns once it is durable. When full: waits (`block`)
        or drops the oldest batches (`drop_oldest`)."""
        frame = encode_frame(batch.batch_id, batch.events, batch.payload)
        # Only the batcher calls put, one batch at a time; the lock is not held during the
        # write so that shipping and acknowledgements go on meanwhile.
        async with self._changed:
            if self.when_full == "block":
                await self._changed.wait_for(lambda: self._bytes + len(frame) <= self.max_bytes
                                             or self._bytes == 0)
            else:
                while self._bytes + len(frame) > self.max_bytes and self._bytes > 0:
                    if not self._drop_oldest_segment():
                        break
        # The write and fsync run in a thread so the event loop keeps shipping meanwhile; the
        # reader sees the frame only once segment.size covers it, i.e. once it is durable.
        delay = 0.05
        while True:
            try:
                async with self._changed:
                    segment = self._segments[-1] if self._segments and self._write_handle else None
                    if segment is None or segment.size >= self.segment_bytes:
                        segment = self._open_segment(batch.batch_id)
                await asyncio.to_thread(self._write, frame, segment.size)
                break
            except OSError as exc:
                # A full (or failing) state disk: the batch is not durable, so the sources'
                # checkpoints stay where they are and reading waits here (the log files are the
                # buffer). Shipping goes on; acknowledged segments give space back.
                if self.fault is None:
                    log.error("spool: cannot write in %s (%s); reading paused until it can",
                              self.dir, exc.strerror)
                self.fault = f"cannot write the spool in {self.dir}: {exc.strerror}"
                await asyncio.sleep(delay)
                delay = min(2.0, delay * 2)
        if self.fault is not None:
            log.warning("spool: writable again, reading resumes")
            self.fault = None
        async with self._changed:
            segment.size += len(frame)
            segment.last_id = batch.batch_id
            self._events += batch.events
            self._bytes += len(frame)
            self._changed.notify_all()

    def _drop_oldest_segment(self) -> bool:
        """drop_oldest: discard the oldest segment's unacknowledged batches (counted)."""
        if not self._segments:
            return False
        if len(self._segments) == 1 and self._write_handle is not None:
            # Everything is in the segment being written: start a new one so the old can go.
            self._write_handle.close()
            self._write_handle = None
        oldest = self._segments[0]
        dropped = 0
        for frame in scan_segment(oldest.path):
            if self._is_acked(frame.batch_id):
                continue
            size = HEADER.size + len(frame.payload)
            self._in_flight.pop(frame.batch_id, None)
            self._events -= frame.events
            self._bytes -= size
            dropped += frame.events
        self._remove_segment(0)
        self.acked_upto = max(self.acked_upto, oldest.last_id)
        self._acked_above = {i for i in self._acked_above if i > self.acked_upto}
        if dropped:
            log.warning("spool full: dropped %d oldest event(s)", dropped)
            self.on_drop(dropped)
        return True

    def _remove_segment(self, index: int) -> None:
        segment = self._segments.pop(index)
        if self._read_path == segment.path:
            self._close_reader()
        if index < self._read_segment:
            self._read_segment -= 1
        elif index == self._read_segment:
            self._read_offset = 0
        try:
            segment.path.unlink()
        except FileNotFoundError:
            pass

    # -- reading and acknowledging -------------------------------------------------------

    def _is_acked(self, batch_id: int) -> bool:
        return batch_id <= self.acked_upto or batch_id in self._acked_above

    def _close_reader(self) -> None:
        if self._read_handle is not None:
            self._read_handle.close()
        self._read_handle = None
        self._read_path = None

    def _next_frame(self) -> Frame | None:
        while self._read_segment < len(self._segments):
            segment = self._segments[self._read_segment]
            if self._read_offset < segment.size:
                if self._read_path != segment.path:
                    self._close_reader()
                    self._read_handle = open(segment.path, "rb")  # noqa: SIM115 — kept open across reads
                    self._read_path = segment.path
                frame = read_frame(self._read_handle, self._read_offset, segment.size)
                if frame is None:  # cannot happen for frames this process wrote; skip the rest
                    log.error("spool: %s: unreadable frame at %d; skipping the rest of the segment",
                              segment.path.name, self._read_offset)
                    self._read_offset = segment.size
                    continue
                self._read_offset = frame.end
                if not self._is_acked(frame.batch_id):
                    return frame
                continue
            if self._read_segment == len(self._segments) - 1:
                return None  # at the end of the newest segment: wait for more
            self._read_segment += 1
            self._read_offset = 0
        return None

    async def next_unsent(self) -> SealedBatch:
        async with self._changed:
            while True:
                frame = self._next_frame()
                if frame is not None:
                    self._in_flight[frame.batch_id] = (frame.events, HEADER.size + len(frame.payload))
                    return SealedBatch(frame.batch_id, frame.payload, frame.events)
                await self._changed.wait()

    def rewind(self) -> None:
        """A new connection: re-send every unacknowledged batch from the oldest segment on."""
        self._read_segment, self._read_offset = 0, 0
        self._in_flight.clear()

    def ack(self, batch_id: int) -> SealedBatch | None:
        sent = self._in_flight.pop(batch_id, None)
        if sent is None or self._is_acked(batch_id):
            return None
        events, size = sent
        self._events -= events
        self._bytes -= size
        self._acked_above.add(batch_id)
        while self.acked_upto + 1 in self._acked_above:
            self.acked_upto += 1
            self._acked_above.discard(self.acked_upto)
        self._release_segments()
        now = asyncio.get_running_loop().time()
        if now - self._last_note >= ACK_NOTE_INTERVAL:
            self._note_acked()
            self._last_note = now
        asyncio.get_running_loop().create_task(self._notify())
        return SealedBatch(batch_id, b"", events)

    def _release_segments(self) -> None:
        """Delete leading segments whose batches are all acknowledged (never the one written)."""
        while self._segments:
            segment = self._segments[0]
            writing = len(self._segments) == 1 and self._write_handle is not None
            if writing or segment.last_id > self.acked_upto:
                return
            self._remove_segment(0)

    def _note_acked(self) -> None:
        # Not fsynced: a stale note only means re-sending batches the collector deduplicates.
        tmp = self._ack_path.with_suffix(".tmp")
        try:
            tmp.write_text(str(self.acked_upto))
            os.replace(tmp, self._ack_path)
        except OSError as exc:
            log.warning("spool: cannot note acknowledgements: %s", exc.strerror)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def pending_events(self) -> int:
        return self._events

    def pending_bytes(self) -> int:
        return self._bytes

    def close(self) -> None:
        self._note_acked()
        self._close_reader()
        if self._write_handle is not None:
            self._write_handle.close()
            self._write_handle = None
